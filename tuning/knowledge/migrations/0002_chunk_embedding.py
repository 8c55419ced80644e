import django.contrib.postgres.indexes
import django.db.models.functions.comparison
import pgvector.django
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('knowledge', '0001_initial'),
    ]

    operations = [
        # pgvector, in `public` like pg_trgm (on every instance's search_path). It is not a trusted
        # extension: the private server's owner is a superuser; elsewhere a superuser creates it first.
        migrations.RunSQL("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public", migrations.RunSQL.noop),
        migrations.AddField(
            model_name='chunk',
            name='embedding',
            field=pgvector.django.VectorField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='chunk',
            index=pgvector.django.HnswIndex(django.contrib.postgres.indexes.OpClass(django.db.models.functions.comparison.Cast('embedding', pgvector.django.VectorField(dimensions=1024)), name='vector_cosine_ops'), ef_construction=64, m=16, name='knowledge_chunk_embedding'),
        ),
    ]
