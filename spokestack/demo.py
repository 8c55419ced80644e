"""The demo the README's first command brings up: the guide's three agencies, each with an
admin and two clients (each with its brand guidelines document), plus a platform admin on the
public host. Idempotent."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django_tenants.utils import schema_context

from spokestack.tenancy.models import Domain, Instance
from spokestack.tenancy.services import instance_provision

from .demo_data import (
    DEMO_CATALOGUE_RUNS,
    DEMO_CLIENT_TUNING,
    DEMO_ERP_AGENCY,
    DEMO_INSTANCES,
    DEMO_PASSWORD,
    DEMO_SKILL_AGENT_TYPES,
    DEMO_SKILL_DESCRIPTION,
    DEMO_SKILL_INPUT_SCHEMA,
    DEMO_SKILL_NAME,
    DEMO_SKILL_PATH,
    DEMO_STUDIO_AGENTS,
    PLATFORM_ADMIN,
    PLATFORM_HOST,
)


@transaction.atomic
def _platform() -> None:
    public, _ = Instance.objects.get_or_create(
        schema_name="public", defaults={"name": "SpokeStack platform", "tier": Instance.Tier.ENTERPRISE}
    )
    Domain.objects.get_or_create(domain=PLATFORM_HOST, defaults={"tenant": public, "is_primary": True})
    User = get_user_model()
    if not User.objects.filter(username=PLATFORM_ADMIN).exists():
        User.objects.create_superuser(username=PLATFORM_ADMIN, email=PLATFORM_ADMIN, password=DEMO_PASSWORD)


def seed_demo(*, erp_url: str = "") -> list[str]:
    """Create what is missing; return a line per thing created. With `erp_url`, point every demo
    instance at the sample ERP there (its port changes from one `make run` to the next), and give
    it the demo's webhook skill on that ERP."""
    from spokestack.sample_erp import DEMO_API_KEYS
    from spokestack.tenancy.services import instance_set_erp
    from tuning.models import Client
    from tuning.services import client_create

    created = []
    _platform()
    for demo in DEMO_INSTANCES:
        if not Instance.objects.filter(schema_name=demo.schema).exists():
            instance_provision(name=demo.name, domain=demo.host, admin_email=demo.admin_email,
                               admin_password=DEMO_PASSWORD, schema_name=demo.schema, tier=demo.tier,
                               region=demo.region, language=demo.language, timezone=demo.timezone)
            created.append(f"instance {demo.name} at {demo.host}")
        with schema_context(demo.schema):
            for name, vertical, region, language in demo.clients:
                if not Client.objects.filter(name=name).exists():
                    client_create(name=name, vertical=vertical, region=region, language=language)
                    created.append(f"client {name} of {demo.name}")
        with schema_context(demo.schema):
            created += _demo_tuning(demo)
            created += seed_demo_documents(demo)
            created += seed_demo_studio_agent(demo)
            created += seed_demo_evals(demo)
        if erp_url:
            instance = Instance.objects.get(schema_name=demo.schema)
            instance_set_erp(instance=instance, base_url=erp_url, api_key=DEMO_API_KEYS[DEMO_ERP_AGENCY[demo.schema]])
            with schema_context(demo.schema):
                created += seed_demo_skill(demo, erp_url=erp_url, api_key=DEMO_API_KEYS[DEMO_ERP_AGENCY[demo.schema]])
                created += seed_demo_versions(demo, erp_url=erp_url, api_key=DEMO_API_KEYS[DEMO_ERP_AGENCY[demo.schema]])
                created += seed_demo_webhook(demo, erp_url=erp_url)
    return created


def seed_demo_skill(demo, *, erp_url: str, api_key: str) -> list[str]:
    """The competitor-check webhook skill on the sample ERP, once; later seeds only follow the
    ERP to its new URL. Made through the skills services, so it is validated (the URL by the
    egress rules: loopback only for the ports the launcher allows), its secrets are sealed and
    the change is logged like any skill's."""
    from skills.models import Skill
    from skills.services import skill_create, skill_update

    url = erp_url.rstrip("/") + DEMO_SKILL_PATH
    skill = Skill.objects.filter(name=DEMO_SKILL_NAME).first()
    if skill is None:
        skill_create(actor=None, name=DEMO_SKILL_NAME, description=DEMO_SKILL_DESCRIPTION,
                     input_schema=DEMO_SKILL_INPUT_SCHEMA, agent_types=list(DEMO_SKILL_AGENT_TYPES),
                     webhook_url=url, auth_type=Skill.AuthType.API_KEY, auth_header="X-Api-Key",
                     auth_secret=api_key, enabled=True)
        return [f"skill {DEMO_SKILL_NAME} of {demo.name}"]
    if skill.webhook_url != url:
        skill_update(actor=None, skill=skill, changes={"webhook_url": url})
    return []


DEMO_EVENT_TYPES = ["run.succeeded", "run.failed", "run.awaiting_approval", "approval.requested",
                    "approval.decided", "memory.proposed", "document.ready", "budget.warning"]


def seed_demo_webhook(demo, *, erp_url: str) -> list[str]:
    """An event webhook to the sample ERP's receiver (`/hooks/events/<agency>`), once; later seeds
    only follow the ERP to its new URL. `make run` then shows deliveries in Event webhooks."""
    from spokestack.webhooks.models import WebhookSubscription
    from spokestack.webhooks.services import subscription_create, subscription_update

    url = f"{erp_url.rstrip('/')}/hooks/events/{DEMO_ERP_AGENCY[demo.schema]}"
    subscription = WebhookSubscription.objects.filter(description=DEMO_WEBHOOK_DESCRIPTION).first()
    if subscription is None:
        subscription_create(actor=None, url=url, event_types=DEMO_EVENT_TYPES, description=DEMO_WEBHOOK_DESCRIPTION)
        return [f"event webhook of {demo.name} to the sample ERP"]
    if subscription.url != url:
        subscription_update(actor=None, subscription_id=subscription.pk, url=url)
    return []


DEMO_WEBHOOK_DESCRIPTION = "The sample ERP (demo)"


def seed_demo_versions(demo, *, erp_url: str, api_key: str) -> list[str]:
    """The guide's upgrade scenario (§9.12, §9.14) in one agency (DEMO_VERSIONS_SCHEMA): on media
    buying 2.3.1 with performance/ROAS preferences, policy staged, a `roas_optimizer` webhook skill
    that relies on the bid strategy tool, and the 2.4.0 update waiting for review. The update is
    analysed by the real impact analysis (the skill overlaps the changed bid strategy tool and the
    preferences conflict with 2.4.0's reach focus: caution). Idempotent: the skill only follows the
    ERP to its new URL, and nothing changes once the agency has the notification or runs another
    version."""
    from skills.models import Skill
    from skills.services import skill_create, skill_update
    from versions.models import AgentVersionConfig, UpdateNotification, UpdatePolicy
    from versions.services import config_get_or_create, release_notify_instance, version_config_update

    from .demo_data import (
        DEMO_ROAS_SKILL_DESCRIPTION,
        DEMO_ROAS_SKILL_INPUT_SCHEMA,
        DEMO_ROAS_SKILL_NAME,
        DEMO_ROAS_SKILL_PATH,
        DEMO_ROAS_SKILL_RELIES_ON,
        DEMO_VERSIONS_AGENT,
        DEMO_VERSIONS_FROM,
        DEMO_VERSIONS_PREFERENCES,
        DEMO_VERSIONS_SCHEMA,
        DEMO_VERSIONS_TO,
    )

    if demo.schema != DEMO_VERSIONS_SCHEMA:
        return []
    created = []
    url = erp_url.rstrip("/") + DEMO_ROAS_SKILL_PATH
    skill = Skill.objects.filter(name=DEMO_ROAS_SKILL_NAME).first()
    if skill is None:
        skill_create(actor=None, name=DEMO_ROAS_SKILL_NAME, description=DEMO_ROAS_SKILL_DESCRIPTION,
                     input_schema=DEMO_ROAS_SKILL_INPUT_SCHEMA, agent_types=[DEMO_VERSIONS_AGENT],
                     relies_on_tools=list(DEMO_ROAS_SKILL_RELIES_ON), webhook_url=url,
                     auth_type=Skill.AuthType.API_KEY, auth_header="X-Api-Key", auth_secret=api_key, enabled=True,
                     reason="demo seed")
        created.append(f"skill {DEMO_ROAS_SKILL_NAME} of {demo.name}")
    elif skill.webhook_url != url:
        skill_update(actor=None, skill=skill, changes={"webhook_url": url})
    if UpdateNotification.objects.filter(agent_type=DEMO_VERSIONS_AGENT, version=DEMO_VERSIONS_TO).exists():
        return created
    config = (AgentVersionConfig.objects.filter(agent_type=DEMO_VERSIONS_AGENT).first()
              or config_get_or_create(agent_type=DEMO_VERSIONS_AGENT, initial_version=DEMO_VERSIONS_FROM))
    if config.current_version != DEMO_VERSIONS_FROM:
        return created  # the agency already moved on: leave its versions alone
    version_config_update(actor=None, agent_type=DEMO_VERSIONS_AGENT,
                          changes={"policy": UpdatePolicy.STAGED,
                                   "optimization_preferences": list(DEMO_VERSIONS_PREFERENCES)},
                          reason="demo seed: a performance agency that reviews every update")
    note = release_notify_instance(agent_type=DEMO_VERSIONS_AGENT, version=DEMO_VERSIONS_TO,
                                   previous_version=DEMO_VERSIONS_FROM)
    if note is not None:
        created.append(f"{DEMO_VERSIONS_AGENT} {DEMO_VERSIONS_TO} update ({note.recommendation}) waiting for "
                       f"review in {demo.name}")
        created += _demo_update_evals()
    return created


def seed_demo_evals(demo) -> list[str]:
    """A small eval set per agency from its demo runs' tasks (DEMO_EVAL_CASES), once: the demo run's
    task for the agency's first client and its catalogue runs' tasks, with expectations the agency
    would hold them to."""
    from tuning.models import Client
    from versions.evals.services import eval_case_create
    from versions.models import EvalCase

    from .demo_data import DEMO_EVAL_CASES

    if EvalCase.objects.exists():
        return []
    client = Client.objects.get(name=demo.clients[0][0])
    cases = [(demo.demo_agent, demo.demo_task, DEMO_EVAL_CASES.get(demo.schema, {}))]
    cases += [(agent_type, task, {}) for agent_type, task in DEMO_CATALOGUE_RUNS.get(demo.schema, ())]
    for agent_type, task, extra in cases:
        expectations = {"min_chars": 200, "brand_rules_pass": True, **extra.get("expectations", {})}
        eval_case_create(actor=None, data={"agent_type": agent_type, "task": task, "client_id": client.pk,
                                           "title": extra.get("title") or task.split(",")[0][:120],
                                           "expectations": expectations})
    return [f"{len(cases)} eval cases of {demo.name}"]


def _demo_update_evals() -> list[str]:
    """The eval set of the seeded update's agent on both versions (queued: the worker runs them once
    `make run` starts it), so the update's page shows them side by side."""
    from versions.evals.services import eval_run_queue
    from versions.models import EvalCase

    from .demo_data import DEMO_VERSIONS_AGENT, DEMO_VERSIONS_FROM, DEMO_VERSIONS_TO

    case_ids = list(EvalCase.objects.filter(agent_type=DEMO_VERSIONS_AGENT, enabled=True).order_by("pk")
                    .values_list("pk", flat=True))
    if not case_ids:
        return []
    for version in (DEMO_VERSIONS_FROM, DEMO_VERSIONS_TO):
        eval_run_queue(agent_type=DEMO_VERSIONS_AGENT, version=version, case_ids=case_ids)
    return [f"eval runs of {DEMO_VERSIONS_AGENT} {DEMO_VERSIONS_FROM} and {DEMO_VERSIONS_TO}"]


def seed_demo_documents(demo) -> list[str]:
    """Each client's brand guidelines (DEMO_GUIDELINES), once: uploaded through the documents' service
    (audited like any upload) in the instance's format (DEMO_GUIDELINES_FORMAT) and read at once, so
    the demo's first run can search and cite them (the queued ingestion then finds nothing to do). The
    first client's "Words we avoid" section is pinned (tier 3: in every prompt for that client)."""
    from django.core.files.base import ContentFile

    from tuning.knowledge.models import Document, DocumentKind
    from tuning.knowledge.pins import document_pin
    from tuning.knowledge.services import document_ingest, document_upload
    from tuning.models import Client

    from .demo_data import DEMO_GUIDELINES, DEMO_GUIDELINES_FORMAT

    created = []
    for position, (name, *_) in enumerate(demo.clients):
        client = Client.objects.get(name=name)
        if Document.objects.filter(client=client, kind=DocumentKind.BRAND_GUIDELINES).exists():
            continue
        guidelines = DEMO_GUIDELINES[name]
        file_name, data = guidelines_file(guidelines, DEMO_GUIDELINES_FORMAT[demo.schema])
        document = document_upload(actor=None, client=client, title=guidelines.title,
                                   kind=DocumentKind.BRAND_GUIDELINES, language="en",
                                   uploaded_file=ContentFile(data, name=file_name), reason="demo seed")
        document_ingest(document_id=document.pk, revision=document.revision)
        created.append(f"brand guidelines of {name} ({file_name})")
        if position == 0:
            # The first client's words to avoid, pinned into tier 3: every run for it is told them.
            heading, text = next(section for section in guidelines.sections() if section[0] == "Words we avoid")
            document_pin(actor=None, document_id=document.pk, excerpt=f"{heading}\n{text}", reason="demo seed")
            created.append(f"pinned: {heading.lower()} of {name}")
    return created


def _demo_tuning(demo) -> list[str]:
    """The first client's brand voice, a never rule and an approved example, once."""
    from tuning.models import Client, ContentRule
    from tuning.services import client_example_add, client_rule_add, client_tuning_update

    client = Client.objects.get(name=demo.clients[0][0])
    if ContentRule.objects.filter(client=client).exists():
        return []
    voice, never, (kind, text) = DEMO_CLIENT_TUNING[demo.schema]
    client_tuning_update(actor=None, client=client, changes={"brand_voice": voice}, reason="demo seed")
    client_rule_add(actor=None, client=client, kind="never", text=never, reason="demo seed")
    client_example_add(actor=None, client=client, kind=kind, text=text, reason="demo seed")
    return [f"tuning for {client.name}"]


def seed_demo_studio_agent(demo) -> list[str]:
    """The agency's own agent (DEMO_STUDIO_AGENTS), built and published as v1 through the studio's
    services (audited like any), once."""
    from agents.studio.models import AgencyAgent
    from agents.studio.services import agent_create, agent_publish

    slug, definition, _task = DEMO_STUDIO_AGENTS[demo.schema]
    if AgencyAgent.objects.filter(slug=slug).exists():
        return []
    agent_create(actor=None, slug=slug, definition=definition, reason="demo seed")
    agent_publish(actor=None, slug=slug, change_note="First version (demo seed)")
    return [f"agency-built agent {slug} v1"]


def demo_credentials() -> list[dict]:
    """A fresh API token per demo instance (older demo tokens revoked) and its demo client."""
    from spokestack.accounts.models import ApiToken
    from spokestack.accounts.services import api_token_create, api_token_revoke
    from tuning.models import Client

    out = []
    for demo in DEMO_INSTANCES:
        with schema_context(demo.schema):
            admin = get_user_model().objects.get(username=demo.admin_email)
            for token in ApiToken.objects.filter(user=admin, name="make run demo", revoked_at__isnull=True):
                api_token_revoke(token=token)
            raw = api_token_create(user=admin, name="make run demo").raw
            client = Client.objects.get(name=demo.clients[0][0])
            out.append({"host": demo.host, "name": demo.name, "token": raw, "client_id": client.pk,
                        "client": client.name, "agent_type": demo.demo_agent, "task": demo.demo_task})
            first = out[-1]
            slug, _definition, task = DEMO_STUDIO_AGENTS[demo.schema]  # and the agency's own agent, once
            out.append({**first, "agent_type": slug, "task": task})
            out += [{**first, "agent_type": agent_type, "task": task}  # and the catalogue's newer agents
                    for agent_type, task in DEMO_CATALOGUE_RUNS[demo.schema]]
    return out


def guidelines_file(guidelines, file_type: str) -> tuple[str, bytes]:
    """A demo client's brand guidelines as a file of `file_type` (pdf: fpdf2, docx: python-docx, md):
    (file name, bytes). Headings are real headings in each format (a larger font in the PDF, heading
    styles in the DOCX), so the chunks keep their sections."""
    import io

    slug = guidelines.client.lower().replace(" ", "-")
    if file_type == "md":
        return f"{slug}-brand-guidelines.md", guidelines.markdown().encode()
    if file_type == "docx":
        from docx import Document as DocxDocument

        doc = DocxDocument()
        doc.add_heading(guidelines.title, level=1)
        for heading, text in guidelines.sections():
            doc.add_heading(heading, level=2)
            for line in text.split("\n"):
                if line.startswith("- "):
                    doc.add_paragraph(line[2:], style="List Bullet")
                else:
                    doc.add_paragraph(line)
        out = io.BytesIO()
        doc.save(out)
        return f"{slug}-brand-guidelines.docx", out.getvalue()
    from fpdf import FPDF

    def latin(text: str) -> str:  # the PDF's core font is Latin-1
        for a, b in (("\u201c", '"'), ("\u201d", '"'), ("\u2019", "'"), ("\u2013", "-"), ("\u2014", "-")):
            text = text.replace(a, b)
        return text.encode("latin-1", "replace").decode("latin-1")

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_title(latin(guidelines.title))
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=20)
    pdf.multi_cell(0, 10, latin(guidelines.title), new_x="LMARGIN", new_y="NEXT")
    for number, (heading, text) in enumerate(guidelines.sections()):
        if number in (3, 6):  # a few pages, so citations name a page
            pdf.add_page()
        pdf.ln(4)
        pdf.set_font("Helvetica", style="B", size=14)
        pdf.multi_cell(0, 8, latin(heading), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        for line in text.split("\n"):
            pdf.multi_cell(0, 6, latin(line), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    return f"{slug}-brand-guidelines.pdf", bytes(pdf.output())
