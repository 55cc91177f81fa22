"""`manage.py import_catalog FILE.csv`: load products, SKUs and stock levels from a CSV file."""

import time

from django.core.management.base import CommandError, CommandParser, OutputWrapper

from core.commands import DatabaseCommand
from inventory.catalog_csv import ImportFileError, catalog_csv_read
from inventory.catalog_import import catalog_import_rows


class ProgressBar:
    """Draw a one-line progress bar on a command's stderr, redrawn when the percentage moves.

    Written without the newline a command's output adds to every write, so the bar redraws
    in place; `close` ends the line.
    """

    WIDTH = 30

    def __init__(self, total: int, stream: OutputWrapper, label: str = "importing") -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.label = label
        self.done = 0
        self.shown = -1
        self.started = time.monotonic()

    def advance(self, count: int) -> None:
        self.done = min(self.total, self.done + count)
        percent = self.done * 100 // self.total
        if percent == self.shown:
            return
        self.shown = percent
        filled = self.WIDTH * self.done // self.total
        elapsed = max(time.monotonic() - self.started, 1e-9)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {percent:3d}% "
            f"{self.done}/{self.total} rows, {self.done / elapsed:,.0f} rows/s",
            ending="",
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("")


class Command(DatabaseCommand):
    help = (
        "Import a catalog CSV (sku,product,variant,category,price,warehouse,on_hand"
        "[,low_stock_threshold,description,is_active,policy,policy_limit,release_date]); running "
        "the same file twice changes "
        "nothing. Bad rows are reported with their line numbers; good rows are imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="path of the CSV file (UTF-8, header row first)")
        parser.add_argument(
            "--no-progress", action="store_true", help="do not draw the progress bar on stderr"
        )

    def handle(self, *args, file: str, no_progress: bool, **options) -> None:
        try:
            rows, errors = catalog_csv_read(path=file)
        except ImportFileError as error:
            raise CommandError(str(error)) from error
        progress = None if no_progress else ProgressBar(len(rows), self.stderr)
        report = catalog_import_rows(
            rows=rows, errors=errors, on_batch=progress.advance if progress else None
        )
        if progress is not None:
            progress.close()
        self.stdout.write(
            f"{report.rows} rows: products {report.products_created} created, "
            f"{report.products_updated} updated; SKUs {report.variants_created} created, "
            f"{report.variants_updated} updated; {report.levels_changed} stock levels and "
            f"{report.policies_changed} stock policies changed; "
            f"{report.categories_created} categories and {report.warehouses_created} "
            "warehouses created"
        )
        for line, message in report.errors:
            self.stderr.write(f"line {line}: {message}")
        if report.errors:
            raise CommandError(
                f"{len(report.errors)} bad row(s) (see above): a row refused for its on_hand or "
                "its policy still set its product's and variant's cells, any other imported nothing"
            )
