"""Complete a user or system task of a running process, with values computed by the pipeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator

from airflow_bpm_provider.operators.process import mapping_or_none

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_bpm_provider.hooks.base import BpmHook

PICK_CHOICES = (None, "first")


def _given(value: Any) -> bool:
    # Not bool(value): an XComArg or a template string stands for a value that comes later.
    return value is not None and not (isinstance(value, str) and not value.strip())


class BpmCompleteTaskOperator(BaseOperator):
    """Complete one open task, named by its id or found by process instance (and task name).

    Returns the completed task's id. Give either ``bpm_task_id`` (e.g. the XCom of
    :class:`~airflow_bpm_provider.sensors.task.BpmTaskSensor`) or ``process_instance_id``,
    optionally with ``task_name``.

    Example (a decision passed the way each system takes one):

        BpmCompleteTaskOperator(
            task_id="approve",
            bpm_conn_id="my_bpm",
            bpm_task_id="{{ ti.xcom_pull(task_ids='wait_for_task') }}",
            claim=True,
            variables={"approved": True},
        )

    :param bpm_conn_id: connection of a BPM connection type (``questetra``, ``bonita``,
        ``activiti``, ``yuuvis_bpm``)
    :param bpm_task_id: the BPM task's id (templated), or give ``process_instance_id``. Questetra
        calls it the workitem id (``"5077"``), Bonita the human task id (``"20004"``), Activiti /
        Flowable the task id (``"2517"`` or a UUID), yuuvis the task id (a UUID).
    :param process_instance_id: find the open task of this process instance (templated), e.g.
        ``"{{ ti.xcom_pull(task_ids='start') }}"``
    :param task_name: only tasks with this name (templated), as the model names the task.
        Questetra the node name (``"Approve"``), Bonita the human task name, Activiti / Flowable /
        WSO2 EI and yuuvis the user task's ``name`` (not its id in the BPMN).
    :param variables: values to complete the task with (templated), for example

        - Questetra: data items by name or number, ``{"Comment": "ok", 4: 1234.5}``, typed from
          the task's form; items the form does not let this task edit are refused before sending;
        - Bonita: the task contract's inputs, ``{"approved": True, "comment": "ok"}``;
        - Activiti / Flowable / WSO2 EI: task variables, ``{"approved": True}``, typed from the
          Python values;
        - yuuvis: task variables, ``{"approved": True}``.
    :param complete_options: vendor-specific options, passed to the hook (templated); a hook
        refuses options it does not know

        - Questetra: ``{"flow": "Approve"}`` presses the button with that label (or flow id);
          ``{"title": "...", "qgroup_id": 3}`` sets the title and the organization to act for;
          ``{"save_only": True}`` saves the form without finishing the task;
        - Bonita: ``{"assign": True}`` lets Bonita assign the task to the logged-in user first
          (``?assign=true``);
        - Activiti / Flowable / WSO2 EI: ``{"outcome": "approve"}``, the form outcome
          (Flowable 6+ only);
        - yuuvis: none.
    :param claim: claim the task before completing it, for tasks offered to candidate users or
        groups (Questetra's offered tasks, Activiti / Flowable / yuuvis candidate tasks, Bonita's
        ready tasks no one is assigned); Questetra and Activiti take a second claim by the same
        user as done
    :param assignee: who claims it (templated); with None, the connection's user

        - Questetra: None accepts the offered task; ``"12:3"`` (``quserId:qgroupId``) allocates
          it to user 12 acting for organization 3;
        - Bonita: a Bonita user id, ``"4"`` (or the logged-in user's name);
        - Activiti / Flowable / WSO2 EI: a user id, ``"kermit"`` (WSO2 secondary user store:
          ``"DOMAIN/kermit"``); None claims for the connection's login;
        - yuuvis: a user id of the identity provider, ``"0f3c5a9e-..."``; None claims for the
          connection's ``user_id`` extra, else the id from ``/tenant-management/api/idm/me``.
    :param pick: with several matching open tasks, ``"first"`` takes the first the system lists;
        None (default) fails naming them. Several open tasks arise from parallel branches or
        multi-instance tasks on every system, e.g. Questetra's split into two ``"Check"`` steps,
        Bonita's multi-instance human task, an Activiti / Flowable parallel gateway, a yuuvis
        review sent to two groups; prefer ``task_name`` or ``bpm_task_id`` where they tell the
        tasks apart.
    """

    template_fields: Sequence[str] = (
        "bpm_task_id",
        "process_instance_id",
        "task_name",
        "variables",
        "complete_options",
        "assignee",
    )
    template_fields_renderers = {"variables": "json", "complete_options": "json"}
    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        bpm_conn_id: str,
        bpm_task_id: str | None = None,
        process_instance_id: str | None = None,
        task_name: str | None = None,
        variables: Mapping[str, Any] | None = None,
        complete_options: Mapping[str, Any] | None = None,
        claim: bool = False,
        assignee: str | None = None,
        pick: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if _given(bpm_task_id) == _given(process_instance_id):
            raise ValueError(
                "give either bpm_task_id, or process_instance_id (optionally with task_name), not both"
            )
        if _given(task_name) and not _given(process_instance_id):
            raise ValueError("task_name selects among the tasks of process_instance_id; give that too")
        if pick not in PICK_CHOICES:
            raise ValueError(f"pick must be None or 'first', got {pick!r}")
        self.bpm_conn_id = bpm_conn_id
        self.bpm_task_id = bpm_task_id
        self.process_instance_id = process_instance_id
        self.task_name = task_name
        self.variables = variables
        self.complete_options = complete_options
        self.claim = claim
        self.assignee = assignee
        self.pick = pick

    def get_hook(self) -> BpmHook:
        from airflow_bpm_provider.hooks.registry import get_bpm_hook

        return get_bpm_hook(self.bpm_conn_id)

    def execute(self, context: Context) -> str:
        variables = mapping_or_none(self.variables, argument="variables")
        options = mapping_or_none(self.complete_options, argument="complete_options") or {}
        with self.get_hook() as hook:
            task_id = str(self.bpm_task_id) if _given(self.bpm_task_id) else self._find_task(hook)
            if self.claim:
                self.log.info("Claiming task %s for %s", task_id, self.assignee or "the connection's user")
                hook.claim_task(task_id, self.assignee or None)
            hook.complete_task(task_id, variables, **options)
        self.log.info("Completed task %s", task_id)
        return task_id

    def _find_task(self, hook: BpmHook) -> str:
        pid = str(self.process_instance_id)
        name = self.task_name or None
        tasks = list(hook.list_tasks(process_instance_id=pid, name=name))
        what = f"process instance {pid}" + (f" named {name!r}" if name else "")
        if not tasks:
            raise AirflowException(
                f"no open task in {what}: it may not have arrived yet (wait with BpmTaskSensor), "
                "or it was completed already"
            )
        if len(tasks) > 1 and self.pick != "first":
            listed = ", ".join(f"{task.id} ({task.name})" for task in tasks)
            raise AirflowException(
                f"{len(tasks)} open tasks in {what}: {listed}; name one with task_name or bpm_task_id, "
                "or set pick='first'"
            )
        return tasks[0].id
