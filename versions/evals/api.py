"""The evals API on the instance host (issue 22): /api/v1/evals/cases… and /api/v1/evals/runs….
Thin: each view names its policy action (InstanceApiView), calls one selector or service and
serializes. Input is validated by the services (the admin refuses the same values with the same
messages); the serializers here document the contract."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from spokestack.api.views import InstanceApiView

from . import selectors, services
from .checks import KINDS


class ExpectationsSerializer(serializers.Serializer):
    tools_required = serializers.ListField(child=serializers.CharField(), required=False)
    tools_forbidden = serializers.ListField(child=serializers.CharField(), required=False)
    brand_rules_pass = serializers.BooleanField(required=False, help_text="The client's rules pass the brand check.")
    phrases_required = serializers.ListField(child=serializers.CharField(), required=False,
                                             help_text="Case-insensitive.")
    phrases_forbidden = serializers.ListField(child=serializers.CharField(), required=False,
                                              help_text="Case-insensitive.")
    min_chars = serializers.IntegerField(required=False, min_value=0)
    max_chars = serializers.IntegerField(required=False, min_value=0)
    artifact_schema = serializers.JSONField(required=False, help_text="JSON Schema (Draft 2020-12) of the JSON "
                                                                      "artifact the run saves.")
    rubric = serializers.CharField(required=False, help_text="Graded by the model when one is configured; "
                                                             "skipped (and said so) offline.")


class EvalCaseInputSerializer(serializers.Serializer):
    agent_type = serializers.CharField()
    task = serializers.CharField()
    title = serializers.CharField(required=False)
    client_id = serializers.IntegerField(required=False, allow_null=True)
    specialization = serializers.JSONField(required=False)
    expectations = ExpectationsSerializer(required=False)
    reference = serializers.CharField(required=False)
    enabled = serializers.BooleanField(required=False)


class EvalCaseSerializer(EvalCaseInputSerializer):
    id = serializers.IntegerField()
    client = serializers.CharField(allow_null=True)
    source_run_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class EvalCaseListSerializer(serializers.Serializer):
    results = EvalCaseSerializer(many=True)


class FromRunSerializer(serializers.Serializer):
    run_id = serializers.UUIDField()
    title = serializers.CharField(required=False)


class EvalRunInputSerializer(serializers.Serializer):
    agent_type = serializers.CharField()
    version = serializers.CharField(required=False, help_text="Default: the version the instance runs.")
    tuning_overlay = serializers.JSONField(required=False, help_text='A proposed change, never saved: '
                                                                     '{"rules": [{"kind": "never", "text": "…"}]}.')


class EvalResultSerializer(serializers.Serializer):
    case_id = serializers.IntegerField(allow_null=True)
    title = serializers.CharField()
    client_id = serializers.IntegerField(allow_null=True)
    run_id = serializers.UUIDField(allow_null=True)
    status = serializers.ChoiceField(choices=["pending", "passed", "failed"])
    passed = serializers.BooleanField(allow_null=True)
    failures = serializers.JSONField(help_text="[{expectation, message}]")
    skipped = serializers.JSONField(help_text="[{expectation, message}]: not judged (the rubric offline).")
    output_excerpt = serializers.CharField()
    tools_used = serializers.ListField(child=serializers.CharField())
    cost_usd = serializers.CharField()
    duration_s = serializers.FloatField(allow_null=True)


class EvalRunSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    agent_type = serializers.CharField()
    version = serializers.CharField()
    tuning_overlay = serializers.JSONField()
    status = serializers.ChoiceField(choices=["queued", "running", "succeeded", "failed"])
    progress = serializers.JSONField(help_text="{done, total}")
    passed = serializers.IntegerField()
    pass_rate = serializers.FloatField(allow_null=True)
    cost_usd = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class EvalRunDetailSerializer(EvalRunSerializer):
    summary = serializers.JSONField(help_text="pass_rate, cost_usd, duration_s, failing cases, previous, "
                                              "newly_failing and newly_passing case ids.")
    results = EvalResultSerializer(many=True)


class EvalRunListSerializer(serializers.Serializer):
    results = EvalRunSerializer(many=True)


def _check_fields(data: dict, serializer_class) -> None:
    from spokestack.errors import InvalidInput

    unknown = sorted(set(data) - set(serializer_class().fields))
    if unknown:
        raise InvalidInput(f"{unknown[0]}: is not a field here; send {', '.join(serializer_class().fields)}.",
                           details={unknown[0]: ["unknown field"]})


class EvalCasesView(InstanceApiView):
    action = {"get": "eval.view", "post": "eval.manage"}

    @extend_schema(operation_id="v1_evals_cases_list", parameters=[OpenApiParameter("agent_type", str)],
                   responses=EvalCaseListSerializer,
                   summary="The eval cases you may see (filter with ?agent_type=copy).")
    def get(self, request):
        agent_type = request.query_params.get("agent_type") or None
        rows = selectors.eval_cases(actor=request.user, agent_type=agent_type).order_by("agent_type", "pk")
        return Response({"results": [selectors.case_dict(c) for c in rows[:500]]})

    @extend_schema(request=EvalCaseInputSerializer, responses={201: EvalCaseSerializer},
                   summary=f"Write an eval case: task, client, specialization, expectations ({', '.join(KINDS)}).")
    def post(self, request):
        data = self.body()
        _check_fields(data, EvalCaseInputSerializer)
        case = services.eval_case_create(actor=request.user, data=data)
        return Response(selectors.case_dict(case), status=status.HTTP_201_CREATED)


class EvalCaseView(InstanceApiView):
    action = {"get": "eval.view", "patch": "eval.manage", "delete": "eval.manage"}

    @extend_schema(responses=EvalCaseSerializer, summary="One eval case.")
    def get(self, request, case_id: str):
        return Response(selectors.case_dict(selectors.eval_case_get(actor=request.user, case_id=case_id)))

    @extend_schema(request=EvalCaseInputSerializer(partial=True), responses=EvalCaseSerializer,
                   summary="Change an eval case (only the fields sent).")
    def patch(self, request, case_id: str):
        data = self.body()
        _check_fields(data, EvalCaseInputSerializer)
        case = services.eval_case_update(actor=request.user, case_id=case_id, changes=data)
        return Response(selectors.case_dict(case))

    @extend_schema(responses={204: None}, summary="Delete an eval case (earlier results keep its title).")
    def delete(self, request, case_id: str):
        services.eval_case_delete(actor=request.user, case_id=case_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EvalCaseFromRunView(InstanceApiView):
    action = "eval.manage"

    @extend_schema(request=FromRunSerializer, responses={201: EvalCaseSerializer},
                   summary="Make an eval case from a succeeded run: its output becomes the reference, "
                           "expectations are proposed from it (tools called, length ±50 %, brand check).")
    def post(self, request):
        data = self.body()
        _check_fields(data, FromRunSerializer)
        case = services.eval_case_from_run(actor=request.user, run_id=data.get("run_id"), title=data.get("title"))
        return Response(selectors.case_dict(case), status=status.HTTP_201_CREATED)


class EvalRunsView(InstanceApiView):
    action = {"get": "eval.view", "post": "eval.run"}

    @extend_schema(operation_id="v1_evals_runs_list", parameters=[OpenApiParameter("agent_type", str)],
                   responses=EvalRunListSerializer,
                   summary="Eval runs, newest first (filter with ?agent_type=copy).")
    def get(self, request):
        rows = selectors.eval_runs(actor=request.user, agent_type=request.query_params.get("agent_type") or None)
        return Response({"results": [selectors.eval_run_dict(request.user, r, with_results=False)
                                     for r in rows[:200]]})

    @extend_schema(request=EvalRunInputSerializer, responses={202: EvalRunSerializer},
                   summary="Run the agent type's eval set against a version (default: the current one), in "
                           "sandbox mode, as a background job; poll the run for progress.")
    def post(self, request):
        data = self.body()
        _check_fields(data, EvalRunInputSerializer)
        eval_run = services.eval_run_start(actor=request.user, agent_type=data.get("agent_type"),
                                           version=data.get("version"), tuning_overlay=data.get("tuning_overlay"))
        return Response(selectors.eval_run_dict(request.user, eval_run, with_results=False),
                        status=status.HTTP_202_ACCEPTED)


class EvalRunView(InstanceApiView):
    action = "eval.view"

    @extend_schema(responses=EvalRunDetailSerializer,
                   summary="An eval run: progress, summary (pass rate, cost, change against the previous run) "
                           "and the result of every case you may see.")
    def get(self, request, eval_run_id: str):
        eval_run = selectors.eval_run_get(actor=request.user, eval_run_id=eval_run_id)
        return Response(selectors.eval_run_dict(request.user, eval_run))
