from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0002_approvalrequest'),
    ]

    operations = [
        migrations.AddField(
            model_name='approvalrequest',
            name='notified_at',
            field=models.DateTimeField(blank=True, editable=False, help_text="When the approvers' e-mail was claimed by a worker task.", null=True),
        ),
    ]
