"""Issue #15 finding 8 in the tuning admin: 0–100 dials are sliders that save through the audited
services and read as "Creativity 40 · Formality 70" wherever they are shown; names read as labels."""

import re

import pytest
from django.test import Client as HttpClient

from tuning.forms import DialsField, dials_text
from tuning.models import ClientTuning, InstanceTuning, TuningChange
from tuning.services import client_tuning_update, instance_tuning_update

from ..conftest import HOST_A

WIDE_FIELDS = {"prompt_extension": "", "instruction_overrides": "{}", "default_vertical": "", "default_region": "",
               "default_language": "", "vertical_knowledge": "{}", "disabled_tools": "",
               "tool_config_overrides": "{}", "output_preferences": "{}", "brand_voice": "", "terminology_use": "",
               "terminology_avoid": "", "require_approval_for": "", "effort": "", "max_tokens": "",
               "content_filters": "", "enabled": "unknown", "audit_all_outputs": "unknown",
               "per_agent-TOTAL_FORMS": "0", "per_agent-INITIAL_FORMS": "0", "per_agent-MIN_NUM_FORMS": "0",
               "per_agent-MAX_NUM_FORMS": "1000"}


@pytest.fixture
def admin_http(in_a, make_user):
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(make_user("instance_admin"))
    return http


def _dials(name: str, rows: list[tuple[str, int | None]]) -> dict[str, str]:
    """What the slider rows post: a name, a used box and a value per row."""
    data = {f"{name}__count": str(len(rows))}
    for i, (key, score) in enumerate(rows):
        data[f"{name}__name__{i}"] = key
        data[f"{name}__value__{i}"] = "50" if score is None else str(score)
        if score is not None:
            data[f"{name}__use__{i}"] = "1"
    return data


def _page_rows(html: str, name: str) -> dict[str, str]:
    """The slider rows of a dials widget as the page shows them: {dial: number shown}."""
    block = html.split(f'data-dials="{name}"', 1)[1].split("</div>\n<style>", 1)[0]
    return dict(re.findall(r'data-dial-row="([^"]*)".*?<output[^>]*>([^<]*)</output>', block, re.S))


def test_dials_are_sliders_and_save_through_the_audited_service(admin_http):
    instance_tuning_update(actor=None, changes={"behaviour_params": {"formality": 70, "creativity": 40},
                                                "traits": {"warmth": 80}})
    url = f"/admin/tuning/instancetuning/{InstanceTuning.objects.get(agent_type='').pk}/change/"
    html = admin_http.get(url).content.decode()
    # Six behaviour dials, one trait and two rows for new traits (and as many in the per-agent inline's template).
    assert html.count('type="range" min="0" max="100" step="1" name="behaviour_params__value__') == 6
    assert html.count('type="range" min="0" max="100" step="1" name="traits__value__') == 1 + 2
    assert _page_rows(html, "behaviour_params") == {"creativity": "40", "detail": "—", "formality": "70",
                                                    "proactivity": "—", "risk_taking": "—", "verbosity": "—"}
    assert "Casual" in html and "Very formal" in html and "Risk taking" in html
    assert '{"formality"' not in html and "{&quot;formality" not in html

    behaviour = _dials("behaviour_params", [("creativity", 40), ("detail", None), ("formality", 85),
                                            ("proactivity", None), ("risk_taking", 20), ("verbosity", None)])
    traits = _dials("traits", [("warmth", None), ("Sense of humour", 35), ("", None)])
    response = admin_http.post(url, {**WIDE_FIELDS, **behaviour, **traits, "_continue": "1",
                                     "change_reason": "A more formal register", "change_ticket": "SUP-7"},
                               follow=True)
    assert response.status_code == 200
    assert "was changed successfully" in response.content.decode()
    row = InstanceTuning.objects.get(agent_type="")
    assert row.behaviour_params == {"creativity": 40, "formality": 85, "risk_taking": 20}
    assert row.traits == {"sense_of_humour": 35}  # warmth unticked: no longer used
    entries = {e.field: e for e in TuningChange.objects.filter(tier=2, reason="A more formal register")}
    assert set(entries) == {"behaviour_params", "traits"} and entries["traits"].ticket == "SUP-7"

    # Read-only displays: the audit log, the entry's page and History name the dials.
    audit = admin_http.get("/admin/tuning/tuningchange/").content.decode()
    assert "Creativity 40 · Formality 70 <span class=\"arrow\">→</span>" in audit.replace("</code>", "")
    assert "Creativity 40 · Formality 85 · Risk taking 20" in audit and "Sense of humour 35" in audit
    assert "{&quot;formality" not in audit and '{"formality' not in audit
    entry = admin_http.get(f"/admin/tuning/tuningchange/{entries['traits'].pk}/change/").content.decode()
    assert "Warmth 80" in entry and "Sense of humour 35" in entry and "warmth&quot;" not in entry
    history = admin_http.get(f"/admin/tuning/instancetuning/{row.pk}/history/").content.decode()
    assert "Creativity 40 · Formality 85 · Risk taking 20" in history
    rollback = admin_http.get(f"/admin/tuning/tuningchange/{entries['behaviour_params'].pk}/rollback/")
    assert "Creativity 40 · Formality 70" in rollback.content.decode()


def test_a_dial_out_of_range_or_unknown_is_refused_next_to_its_field(admin_http):
    instance_tuning_update(actor=None, changes={"behaviour_params": {"formality": 70}})
    url = f"/admin/tuning/instancetuning/{InstanceTuning.objects.get(agent_type='').pk}/change/"
    behaviour = _dials("behaviour_params", [("formality", 120), ("sparkle", 30)])
    traits = _dials("traits", [("", 40), ("9 lives", 20)])
    response = admin_http.post(url, {**WIDE_FIELDS, **behaviour, **traits, "_continue": "1"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Formality must be a whole number from 0 to 100, not “120”." in html
    assert "“sparkle” is not a behaviour dial; the dials are creativity, detail, formality" in html
    assert "A trait with a score needs a name" in html and "“9 lives” is not a trait name" in html
    assert InstanceTuning.objects.get(agent_type="").behaviour_params == {"formality": 70}
    assert not TuningChange.objects.filter(tier=2, field="traits").exists()
    assert _page_rows(html, "behaviour_params")["formality"] == "120"  # what was typed stays on the form


def test_dials_field_and_text():
    field = DialsField(names=("creativity", "formality"))
    assert field.clean({"formality": 70}) == {"formality": 70}
    assert field.clean(None) == {}
    assert not field.has_changed({"formality": 70}, {"__rows__": [{"key": "formality", "score": "70"}]})
    assert field.has_changed({"formality": 70}, {"__rows__": [{"key": "formality", "score": None}]})
    assert not field.has_changed({"formality": 70}, None)  # a post without the rows changes nothing
    assert dials_text({"formality": 70, "creativity": 40}) == "Creativity 40 · Formality 70"
    assert dials_text({}) == "none set"


def test_names_read_as_labels(in_a, make_client):
    client = make_client("Lumen Skin")
    row = client_tuning_update(actor=None, client=client, agent_type="copy", changes={"brand_voice": "Bright."})
    assert str(row) in {"Lumen Skin · Copywriting", "Lumen Skin · Copy"}
    assert str(ClientTuning(client=client)) == "Lumen Skin · all agents"
    assert str(InstanceTuning(agent_type="media_buying")) == "Tuning for Media buying"
    entry = TuningChange.objects.filter(field="brand_voice").latest("id")
    assert re.fullmatch(r"(Updated|Created) client tuning for Copy(writing)? of Lumen Skin · brand voice", str(entry))
    assert (TuningChange._meta.verbose_name, TuningChange._meta.verbose_name_plural) == ("audit entry",
                                                                                          "audit entries")
    assert ClientTuning._meta.verbose_name_plural == "client tuning"


def test_a_reader_of_tier_2_sees_the_dials_as_text(in_a, make_user):
    instance_tuning_update(actor=None, changes={"behaviour_params": {"formality": 70, "creativity": 40},
                                                "traits": {"warmth": 80}})
    instance_tuning_update(actor=None, agent_type="copy", changes={"behaviour_params": {"verbosity": 20}})
    http = HttpClient(HTTP_HOST=HOST_A)
    http.force_login(make_user("instance_manager"))
    page = http.get(f"/admin/tuning/instancetuning/{InstanceTuning.objects.get(agent_type='').pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and 'type="range"' not in html
    assert "Creativity 40 · Formality 70" in html and "Warmth 80" in html and "Verbosity 20" in html
    assert "{&quot;formality" not in html and '{"formality' not in html
