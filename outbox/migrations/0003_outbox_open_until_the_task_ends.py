from django.db import migrations, models
from django.db.models import F


def close_rows_published_before(apps, schema_editor):
    """Rows published so far were closed at publish, as the outbox then promised: mark them done
    rather than have the relay send a week of finished work again."""
    apps.get_model("outbox", "OutboxMessage").objects.filter(published_at__isnull=False).update(
        done_at=F("published_at")
    )


class Migration(migrations.Migration):
    """A request stays open from publish until its task is done or failed for good."""

    dependencies = [
        ("outbox", "0002_task_failure"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="outboxmessage", name="outbox_pending_idx"),
        migrations.RenameField(
            model_name="outboxmessage", old_name="sent_at", new_name="published_at"
        ),
        migrations.AlterField(
            model_name="outboxmessage",
            name="published_at",
            field=models.DateTimeField(
                blank=True,
                help_text="Last handed to the broker: by the commit, the relay, or the task's own retry.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="outboxmessage",
            name="done_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="outboxmessage",
            name="failed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="outboxmessage",
            name="claimed_until",
            field=models.DateTimeField(
                blank=True, help_text="A relay is publishing this row until then.", null=True
            ),
        ),
        migrations.AddField(
            model_name="outboxmessage",
            name="redeliveries",
            field=models.PositiveIntegerField(
                default=0, help_text="Times the relay published it again after no end was seen."
            ),
        ),
        migrations.AlterField(
            model_name="outboxmessage",
            name="attempts",
            field=models.PositiveIntegerField(default=0, help_text="Publishes the broker refused."),
        ),
        migrations.RunPython(close_rows_published_before, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="outboxmessage",
            index=models.Index(
                condition=models.Q(("done_at__isnull", True), ("failed_at__isnull", True)),
                fields=["created_at"],
                name="outbox_open_idx",
            ),
        ),
    ]
