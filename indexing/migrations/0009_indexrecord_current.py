"""IndexRecord.current: a record also remembers a file found to differ from its build, so that index status has
one rule and no cache beside it (indexing.writer's module docstring). Every record made before this one was made
for a file found current, hence the default.

The revision triggers of 0007 stay as they are: this touches no table they are on (indexing_indexrecord has none).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("indexing", "0008_job_moves_to_jobs"),
    ]

    operations = [
        migrations.AddField(
            model_name="indexrecord",
            name="current",
            field=models.BooleanField(default=True),
        ),
    ]
