import django.contrib.postgres.indexes
import django.db.models.deletion
from django.db import migrations, models


def fill_lexicons(apps, schema_editor):
    """The lexicon of every document already indexed (what ingestion now writes)."""
    from tuning.knowledge.models import document_terms

    Chunk, Term = apps.get_model("knowledge", "Chunk"), apps.get_model("knowledge", "Term")
    document_ids = Chunk.objects.order_by().values_list("document_id", flat=True).distinct()
    for document_id in document_ids:
        chunks = list(Chunk.objects.filter(document_id=document_id).values_list("client_id", "heading", "text"))
        Term.objects.bulk_create([Term(document_id=document_id, client_id=chunks[0][0], term=term)
                                  for term in document_terms(f"{h} {t}" for _, h, t in chunks)], batch_size=2000)


class Migration(migrations.Migration):

    dependencies = [
        ('knowledge', '0002_chunk_embedding'),
        ('tuning', '0009_knowledge_document_entity'),
    ]

    operations = [
        migrations.CreateModel(
            name='Term',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('term', models.CharField(max_length=60)),
            ],
        ),
        migrations.RemoveIndex(
            model_name='chunk',
            name='knowledge_chunk_trgm',
        ),
        migrations.AddField(
            model_name='term',
            name='client',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='tuning.client'),
        ),
        migrations.AddField(
            model_name='term',
            name='document',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='terms', to='knowledge.document'),
        ),
        migrations.AddIndex(
            model_name='term',
            index=django.contrib.postgres.indexes.GinIndex(fields=['term'], name='knowledge_term_trgm', opclasses=['gin_trgm_ops']),
        ),
        migrations.AddConstraint(
            model_name='term',
            constraint=models.UniqueConstraint(fields=('document', 'term'), name='knowledge_term_unique'),
        ),
        migrations.RunPython(fill_lexicons, migrations.RunPython.noop),
    ]
