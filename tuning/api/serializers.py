"""Output shapes (and request documentation) of the tuning API. Input is validated by the
services, so the admin and the API refuse the same values with the same messages."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import ApprovedExample, Client, ClientTuning, ContentRule, InstanceTuning, Memory, TuningChange
from ..precedence import BEHAVIOUR_PARAMS, CLIENT_FIELDS, INSTANCE_FIELDS, behaviour_words
from ..specialization import KNOWN


class ClientSerializer(serializers.ModelSerializer):
    archived_at = serializers.DateTimeField(read_only=True, allow_null=True,
                                            help_text="When the client was archived (no new runs); null while active.")

    class Meta:
        model = Client
        fields = ["id", "name", "slug", "vertical", "region", "language", "created_at", "archived_at"]
        read_only_fields = fields


class ClientCreateSerializer(serializers.Serializer):
    """A new client; only `name` is required (the slug is made from it when not given)."""

    name = serializers.CharField()
    slug = serializers.SlugField(required=False, help_text="Unique; made from the name when omitted.")
    vertical = serializers.CharField(required=False, help_text="One of the verticals; default `other`.")
    region = serializers.CharField(required=False, allow_blank=True)
    language = serializers.CharField(required=False, allow_blank=True)
    reason = serializers.CharField(required=False, help_text="Why: kept in the audit log.")
    ticket = serializers.CharField(required=False, help_text="A ticket reference for the audit log.")


ASSIGNABLE_ROLES = ["account_manager", "client_contact"]  # AssignableRoleEnum in the OpenAPI document


class AssignmentSerializer(serializers.Serializer):
    """One person assigned to a client, as the role that assignment gives."""

    user_id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=ASSIGNABLE_ROLES)
    is_active = serializers.BooleanField(help_text="A deactivated person keeps the assignment but acts on nothing.")


class AssignmentCreateSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(help_text="An account manager or a client contact of this instance.")
    role = serializers.ChoiceField(choices=ASSIGNABLE_ROLES, required=False, help_text="Default: the person's role.")
    reason = serializers.CharField(required=False, help_text="Why: kept in the audit log.")
    ticket = serializers.CharField(required=False, help_text="A ticket reference for the audit log.")


class ClientUpdateSerializer(serializers.Serializer):
    """The client fields a PATCH may change (only the ones sent change)."""

    name = serializers.CharField(required=False)
    slug = serializers.SlugField(required=False)
    vertical = serializers.CharField(required=False)
    region = serializers.CharField(required=False, allow_blank=True)
    language = serializers.CharField(required=False, allow_blank=True)
    reason = serializers.CharField(required=False, help_text="Why: kept in the audit log.")
    ticket = serializers.CharField(required=False, help_text="A ticket reference for the audit log.")


UPDATED_AT = "Null while there is no row yet (every field inherits)."

# --- both request shapes: today's and the guide's (§9.25, §9.26) --------------------------------

_SPECIALIZATION_NOTE = ("Case-insensitive; aliases and codes are normalised when saved (e.g. 'gcc', 'uae', 'ksa' -> "
                        "GCC; 'eu', 'de' -> EU; 'English', 'en-GB' -> en; 'Retail', 'e-commerce' -> retail). Unknown "
                        "values are refused with 400 listing the known ones.")


def _specialization_field(dimension: str, help_text: str) -> serializers.CharField:
    return serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                 help_text=f"{help_text} Known: {', '.join(KNOWN[dimension])}. {_SPECIALIZATION_NOTE}")


def _dial(name: str) -> dict:
    words = behaviour_words(name)
    return {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 100},
                      {"type": "string", "enum": sorted(words, key=lambda w: (words[w], w)),
                       "description": "A word, stored as the score in the middle of its band: "
                                      + ", ".join(f"{w} {words[w]}" for w in sorted(words, key=lambda w: (words[w], w)))}]}


@extend_schema_field({"type": "object", "properties": {name: _dial(name) for name in BEHAVIOUR_PARAMS},
                      "additionalProperties": False,
                      "example": {"verbosity": "detailed", "creativity": "conservative", "formality": 70}})
class BehaviourParamsField(serializers.JSONField):
    """Each dial 0-100, or a word such as "detailed" (the guide's shape)."""


@extend_schema_field({"type": "object", "additionalProperties": _dial(""), "example": {"warmth": 80, "humour": "low"}})
class TraitsField(serializers.JSONField):
    pass


_PLAIN = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"},
                    {"type": "array", "items": {"type": "string"}}]}


@extend_schema_field({"type": "object", "additionalProperties": {"oneOf": [
    *_PLAIN["oneOf"], {"type": "object", "additionalProperties": _PLAIN,
                       "description": "The guide's nested shape: named settings of one kind of output."}]},
    "example": {"headlines": {"max_words": 8, "style": "imperative"}, "tone": "warm, never salesy"}})
class PreferencesField(serializers.JSONField):
    """A text per name (today's shape), or the guide's nested settings ({"headlines": {"max_words": 8}})."""


_COMPETITOR_RULE = {"type": "object", "required": ["competitor", "instruction"], "additionalProperties": False,
                    "properties": {"competitor": {"type": "string"}, "instruction": {"type": "string"}}}


@extend_schema_field({"oneOf": [
    {"type": "array", "description": "Today's (and the stored) shape: competitor rules, plus the positioning and "
                                     "differentiators a guide-shaped object was stored as.",
     "items": {"oneOf": [_COMPETITOR_RULE,
                         {"type": "object", "required": ["positioning"], "properties": {"positioning": {"type": "string"}}},
                         {"type": "object", "required": ["differentiation"],
                          "properties": {"differentiation": {"type": "array", "items": {"type": "string"}}}}]}},
    {"type": "object", "additionalProperties": False,
     "description": "The guide's shape (§9.26). Stored as a list: each never_mention name becomes "
                    '{"competitor": name, "instruction": "Never mention by name."} (checked on every output), '
                    'then {"positioning": …} and {"differentiation": […]} (shown in the prompt).',
     "properties": {"never_mention": {"type": "array", "items": {"type": "string"}},
                    "positioning": {"type": "string"},
                    "differentiation": {"type": "array", "items": {"type": "string"}}}},
], "example": {"never_mention": ["Adidas", "Puma"], "positioning": "Premium performance leader",
               "differentiation": ["Innovation", "Heritage"]}})
class CompetitorRulesField(serializers.JSONField):
    pass


@extend_schema_field({"type": "object", "additionalProperties": False,
                      "properties": {kind: {"type": "array", "items": {"type": "string"}}
                                     for kind in ("always", "never", "prefer")},
                      "example": {"always": ["Include Just Do It spirit"], "never": ["Mention competitors"]}})
class ContentRulesField(serializers.JSONField):
    pass


@extend_schema_field({"type": "object", "additionalProperties": False,
                      "properties": {"use": {"type": "array", "items": {"type": "string"}},
                                     "avoid": {"type": "array", "items": {"type": "string"}}}})
class TerminologyField(serializers.JSONField):
    pass


class InstanceTuningSerializer(serializers.ModelSerializer):
    # Tier-2 fields in both shapes, and the guide's names for them (write-only aliases).
    default_vertical = _specialization_field("vertical", "Vertical knowledge when neither the run nor the client "
                                                         "names one ('luxury' is sold through fashion).")
    default_region = _specialization_field("region", "Region when neither the run nor the client names one; else "
                                                     "the instance's own region.")
    default_language = _specialization_field("language", "Language when neither the run nor the client names one; "
                                                         "else the instance's own language.")
    behaviour_params = BehaviourParamsField(required=False, help_text="Dials 0-100, or words ('detailed').")
    traits = TraitsField(required=False)
    output_preferences = PreferencesField(required=False)
    behavior_params = BehaviourParamsField(write_only=True, required=False,
                                           help_text="The guide's spelling of behaviour_params.")
    agency_brand_voice = serializers.CharField(write_only=True, required=False,
                                               help_text="The guide's name for brand_voice.")
    agency_terminology = TerminologyField(write_only=True, required=False,
                                          help_text="The guide's shape of terminology_use / terminology_avoid.")
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text=UPDATED_AT)
    memory_auto_accept = serializers.BooleanField(
        required=False, help_text="Instance-wide only: memories an agent proposes (the remember tool) are accepted at "
                                  "once instead of waiting for an account manager. Audited and reversible.")
    require_eval_for_tuning = serializers.BooleanField(
        required=False, help_text="Instance-wide only: a client rule or avoided term for an agent with eval cases is "
                                  "saved only after a what-if eval of that change finished (409 otherwise, naming "
                                  "the eval run to start). Audited and reversible.")
    reason = serializers.CharField(write_only=True, required=False, help_text="Why: kept in the audit log.")
    ticket = serializers.CharField(write_only=True, required=False, help_text="A ticket reference for the audit log.")

    class Meta:
        model = InstanceTuning
        fields = ["agent_type", *INSTANCE_FIELDS, "memory_auto_accept", "require_eval_for_tuning", "behavior_params", "agency_brand_voice",
                  "agency_terminology", "updated_at", "reason", "ticket"]
        read_only_fields = ["agent_type", "updated_at"]
        extra_kwargs = {field: {"required": False} for field in INSTANCE_FIELDS}


class AgentTuningSerializer(InstanceTuningSerializer):
    """One agent type's tier-2 row, with what applies after precedence and the platform's bounds."""

    memory_auto_accept = None  # instance-wide settings: not on an agent type's row
    require_eval_for_tuning = None
    effective = serializers.DictField(read_only=True, help_text="The values a run gets (tiers 1-2 merged).")
    platform = serializers.DictField(read_only=True, help_text="The platform's bounds: max_effort, "
                                     "max_tokens_limit, content_filters, confirmation_patterns.")

    class Meta(InstanceTuningSerializer.Meta):
        fields = [*(f for f in InstanceTuningSerializer.Meta.fields
                    if f not in ("memory_auto_accept", "require_eval_for_tuning")), "effective",
                  "platform"]


class ClientTuningSerializer(serializers.ModelSerializer):
    competitor_rules = CompetitorRulesField(required=False)
    format_preferences = PreferencesField(required=False)
    length_preferences = PreferencesField(required=False)
    content_rules = ContentRulesField(
        write_only=True, required=False,
        help_text="The guide's shape (§9.26): adds each rule the client does not have yet as a rule row "
                  "(see /clients/{id}/rules); sending it again adds nothing.")
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text=UPDATED_AT)
    reason = serializers.CharField(write_only=True, required=False)
    ticket = serializers.CharField(write_only=True, required=False)

    class Meta:
        model = ClientTuning
        fields = ["client", "agent_type", *CLIENT_FIELDS, "content_rules", "updated_at", "reason", "ticket"]
        read_only_fields = ["client", "agent_type", "updated_at"]
        extra_kwargs = {field: {"required": False} for field in CLIENT_FIELDS}


class ContentRuleSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = ContentRule
        fields = ["id", "kind", "text", "active", "agent_type", "source", "source_reference", "created_by",
                  "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]


class ContentRuleCreateSerializer(serializers.Serializer):
    """One rule, or `{"rules": [...]}` to add several at once (all or none)."""

    kind = serializers.ChoiceField(choices=["always", "never", "prefer"], required=False)
    text = serializers.CharField(required=False)
    agent_type = serializers.CharField(required=False)
    active = serializers.BooleanField(required=False)
    source = serializers.ChoiceField(choices=["manual", "feedback_suggestion"], required=False)
    source_reference = serializers.CharField(required=False)
    rules = serializers.ListField(child=serializers.DictField(), required=False)
    reason = serializers.CharField(required=False)
    ticket = serializers.CharField(required=False)


class ApprovedExampleSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = ApprovedExample
        fields = ["id", "kind", "text", "context", "agent_type", "created_by", "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]


class TuningChangeSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")
    client = serializers.CharField(source="client_label")

    class Meta:
        model = TuningChange
        fields = ["id", "created_at", "actor", "tier", "entity", "entity_id", "agent_type", "client_id", "client",
                  "action", "field", "old_value", "new_value", "reason", "ticket", "affected_clients",
                  "rollback_of_id"]
        read_only_fields = fields


class RollbackSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False)
    ticket = serializers.CharField(required=False)


class PromptSectionSerializer(serializers.Serializer):
    tier = serializers.IntegerField()
    field = serializers.CharField()
    text = serializers.CharField()


class PromptPreviewSerializer(serializers.Serializer):
    agent_type = serializers.CharField()
    version = serializers.CharField()
    client_id = serializers.IntegerField(allow_null=True)
    specialization = serializers.DictField()
    sections = PromptSectionSerializer(many=True)
    system = serializers.ListField(child=serializers.DictField())
    tools = serializers.ListField(child=serializers.DictField())
    effort = serializers.CharField(help_text="output_config.effort sent with every request; empty: none sent.")
    max_tokens = serializers.IntegerField()
    require_approval = serializers.ListField(child=serializers.CharField())
    disabled_tools = serializers.ListField(child=serializers.CharField())
    rules = serializers.ListField(child=serializers.DictField())
    token_estimate = serializers.IntegerField()


class MemorySerializer(serializers.ModelSerializer):
    client_id = serializers.IntegerField(allow_null=True, read_only=True,
                                         help_text="The client it is about; null: the agency (told to every run).")
    proposed_by = serializers.CharField(source="proposed_by.username", default=None, read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", default=None, read_only=True)

    class Meta:
        model = Memory
        fields = ["id", "client_id", "text", "source", "status", "expires_at", "proposed_by", "decided_by",
                  "decided_at", "decision_reason", "use_count", "last_used_at", "created_at", "updated_at"]
        read_only_fields = fields


class MemoryCreateSerializer(serializers.Serializer):
    """A memory written by a person: accepted at once (`memory.write`), or with `status: "proposed"`
    a proposal for an account manager to decide (`memory.propose`, which a client contact has)."""

    client_id = serializers.IntegerField(required=False, allow_null=True,
                                         help_text="The client; omitted or null: agency-wide (admins and managers).")
    text = serializers.CharField(max_length=300, help_text="One short, lasting fact.")
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=["accepted", "proposed"], required=False, default="accepted")
    reason = serializers.CharField(required=False, help_text="Why: kept in the audit log.")
    ticket = serializers.CharField(required=False)


class MemoryEditSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=300, required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    reason = serializers.CharField(required=False)
    ticket = serializers.CharField(required=False)


class MemoryDecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, help_text="Why: kept on the memory and in the audit log.")
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True,
        help_text="Accept only: a new expiry (in the future; null: never). Required to accept an expired memory.")
    ticket = serializers.CharField(required=False)
