from django.db import migrations, models
from django.db.models import F


def claim_time_of_sent_rows(apps, schema_editor):
    """Every row so far was written when its e-mail went out: claimed and sent at once."""
    apps.get_model("orders", "sentemail").objects.update(claimed_at=F("sent_at"))


class Migration(migrations.Migration):
    """A claim is written before the send and marked sent after it, in two transactions."""

    dependencies = [
        ("orders", "0002_sent_email_per_reference"),
    ]

    operations = [
        migrations.AddField(
            model_name="sentemail",
            name="claimed_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(claim_time_of_sent_rows, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="sentemail",
            name="claimed_at",
            field=models.DateTimeField(),
        ),
        migrations.AlterField(
            model_name="sentemail",
            name="sent_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
