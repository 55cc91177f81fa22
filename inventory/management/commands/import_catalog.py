"""`manage.py import_catalog FILE.csv`: load products, SKUs and stock levels from a CSV file."""

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from inventory.catalog_csv import ImportFileError
from inventory.catalog_import import catalog_import_file


class _Unterminated:
    """Write to a command's stderr without the newline it adds, so the bar redraws in place."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, ending="")

    def flush(self) -> None:
        self.wrapper.flush()


class Command(BaseCommand):
    help = (
        "Import a catalog CSV (sku,product,variant,category,price,warehouse,on_hand"
        "[,low_stock_threshold,description,is_active]); running the same file twice changes "
        "nothing. Bad rows are reported with their line numbers; good rows are imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path of the CSV file (UTF-8, header row first)")
        parser.add_argument(
            "--no-progress", action="store_true", help="do not draw the progress bar on stderr"
        )

    def handle(self, *args, file: str, no_progress: bool, **options) -> None:
        try:
            report = catalog_import_file(
                path=file, progress_stream=None if no_progress else _Unterminated(self.stderr)
            )
        except ImportFileError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"{report.rows} rows: products {report.products_created} created, "
            f"{report.products_updated} updated; SKUs {report.variants_created} created, "
            f"{report.variants_updated} updated; {report.levels_changed} stock levels changed; "
            f"{report.categories_created} categories and {report.warehouses_created} "
            "warehouses created"
        )
        for line, message in report.errors:
            self.stderr.write(f"line {line}: {message}")
        if report.errors:
            raise CommandError(f"{len(report.errors)} bad row(s) were not imported (see above)")
