"""Bonita's data and documents (seed 001): case and activity variables, case documents and their
archived versions, and the upload servlet that documents and FILE contract inputs need.

A mixin of :class:`~airflow_bpm_provider.hooks.bonita.BonitaHook`: it uses the hook's ``request``,
``search``, ``_json``, ``_check_id`` and ``bpm_conn_id``. Each method names the path file of
Bonita's OpenAPI spec it follows.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from airflow_bpm_provider.exceptions import BpmConfigError, BpmNotFound, BpmValidationError
from airflow_bpm_provider.hooks import bonita_values as bv
from airflow_bpm_provider.hooks.http import Request


@dataclass(frozen=True)
class BonitaVariable:
    """A case or activity variable: ``value`` decoded into Python from ``type`` (a Java class name)."""

    name: str
    type: str | None
    value: Any
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> BonitaVariable:
        # caseVariable carries ``type``, activityVariable ``className`` (ActivityVariable.yaml).
        java_type = raw.get("type") or raw.get("className")
        return cls(
            name=str(raw.get("name")),
            type=java_type,
            value=bv.from_java(java_type, raw.get("value")),
            raw=raw,
        )


class BonitaDataMixin:
    """Variables and documents of Bonita cases; mixed into BonitaHook."""

    # ---- variables (seed 001) -------------------------------------------------------------------

    def _variable(self, path: str) -> BonitaVariable:
        request = Request("GET", path)
        reply = self.request(request)
        body = self._json(request, reply)
        if not isinstance(body, Mapping):
            raise self._unexpected(request, reply, "a variable must be a JSON object")
        return self._checked_variable(request, reply, body)

    def _checked_variable(self, request: Request, reply: Any, raw: Mapping[str, Any]) -> BonitaVariable:
        """A variable (CaseVariable.yaml, ActivityVariable.yaml): text name, text Java type."""
        if not isinstance(raw.get("name"), str):
            raise self._wrong(request, reply, "a variable has no text 'name'")
        for key in ("type", "className"):
            self._optional(request, reply, raw, key, str, f"variable {raw['name']!r}")
        return BonitaVariable.from_raw(raw)

    def _name(self, name: str) -> str:
        text = str(name)
        # quote() keeps "." as is, and URL normalisation turns a "." or ".." segment into another path.
        if not text or "/" in text or not text.strip("."):
            raise BpmConfigError(
                f"variable name must be non-empty, without '/' and not only dots, got {name!r}",
                conn_id=self.bpm_conn_id,
            )
        return quote(text, safe="")

    def get_activity_variable(self, activity_id: str, name: str) -> BonitaVariable:
        """GET /API/bpm/activityVariable/{activityId}/{name} (API@bpm@activityVariable@...yaml)."""
        return self._variable(
            f"/API/bpm/activityVariable/{self._check_id(activity_id, 'activity id')}/{self._name(name)}"
        )

    def get_archived_activity_variable(self, activity_id: str, name: str) -> BonitaVariable:
        """GET /API/bpm/archivedActivityVariable/{activityId}/{name} (Bonita 2022.1+)."""
        activity = self._check_id(activity_id, "activity id")
        return self._variable(f"/API/bpm/archivedActivityVariable/{activity}/{self._name(name)}")

    def get_case_variable(self, case_id: str, name: str) -> BonitaVariable:
        """GET /API/bpm/caseVariable/{caseId}/{name} (API@bpm@caseVariable@{id}@{variableName}.yaml)."""
        return self._variable(
            f"/API/bpm/caseVariable/{self._check_id(case_id, 'case id')}/{self._name(name)}"
        )

    def search_case_variables(self, case_id: str) -> Iterator[BonitaVariable]:
        """GET /API/bpm/caseVariable?f=case_id=.. (API@bpm@caseVariable.yaml), page after page."""
        filters = [("case_id", self._check_id(case_id, "case id"))]
        where = Request("GET", "/API/bpm/caseVariable")
        return (
            self._checked_variable(where, None, item)
            for item in self.search("bpm/caseVariable", filters=filters)
        )

    def update_case_variable(
        self, case_id: str, name: str, value: Any, *, java_type: str | None = None
    ) -> None:
        """PUT /API/bpm/caseVariable/{caseId}/{name} ``{"type", "value"}``.

        (Body: ProcessInstanceVariableUpdateRequest.yaml.)

        The Java type follows the Python value (see :func:`bonita_values.to_java`) unless
        ``java_type`` or a ``(type, value)`` tuple names it; only String, Integer, Long, Double,
        Boolean and Date are accepted by Bonita. None is refused (BpmValidationError): the
        request's ``value`` is a string the spec does not let be null, so a variable cannot be cleared.
        """
        path = f"/API/bpm/caseVariable/{self._check_id(case_id, 'case id')}/{self._name(name)}"
        given = value[1] if isinstance(value, tuple) and len(value) == 2 and java_type is None else value
        if given is None:
            raise BpmValidationError(
                f"case variable {str(name)!r} cannot be set to None: the value of "
                "ProcessInstanceVariableUpdateRequest is a string that may not be null",
                system="Bonita",
                conn_id=self.bpm_conn_id,
                method="PUT",
                path=path,
            )
        kind, text = bv.to_java(value, java_type=java_type, variable=str(name))
        self.request(Request("PUT", path, json={"type": kind, "value": text}))

    def get_archived_case_variable(self, case_id: str, name: str) -> BonitaVariable:
        """GET /API/bpm/archivedCaseVariable/{caseId}/{name} (Bonita 2022.1+)."""
        return self._variable(
            f"/API/bpm/archivedCaseVariable/{self._check_id(case_id, 'case id')}/{self._name(name)}"
        )

    def search_archived_case_variables(self, case_id: str) -> Iterator[BonitaVariable]:
        """GET /API/bpm/archivedCaseVariable?f=case_id=.. (API@bpm@archivedCaseVariable.yaml)."""
        filters = [("case_id", self._check_id(case_id, "case id"))]
        where = Request("GET", "/API/bpm/archivedCaseVariable")
        return (
            self._checked_variable(where, None, item)
            for item in self.search("bpm/archivedCaseVariable", filters=filters)
        )

    # ---- documents (seed 001) -------------------------------------------------------------------

    def search_documents(
        self,
        case_id: str | None = None,
        *,
        name: str | None = None,
        submitted_by: str | None = None,
        description: str | None = None,
        order: str | None = None,
        search: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """GET /API/bpm/caseDocument, f=caseId, name, submittedBy, description (API@bpm@caseDocument.yaml)."""
        filters = [
            ("caseId", self._check_id(case_id, "case id") if case_id is not None else None),
            ("name", name),
            ("submittedBy", submitted_by),
            ("description", description),
        ]
        return self.search("bpm/caseDocument", filters=filters, order=order, search=search)

    def get_document(self, document_id: str) -> dict[str, Any]:
        """GET /API/bpm/caseDocument/{id} (API@bpm@caseDocument@{id}.yaml)."""
        request = Request("GET", f"/API/bpm/caseDocument/{self._check_id(document_id, 'document id')}")
        reply = self.request(request)
        return self._need_object(request, reply, self._json(request, reply), "the document")

    def search_archived_documents(
        self,
        *,
        case_id: str | None = None,
        archived_case_id: str | None = None,
        source_object_id: str | None = None,
        name: str | None = None,
        order: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """GET /API/bpm/archivedCaseDocument (API@bpm@archivedCaseDocument.yaml): earlier versions
        of live documents and every version of the documents of ended cases."""
        filters = [
            (
                "sourceObjectId",
                self._check_id(source_object_id, "document id") if source_object_id is not None else None,
            ),
            ("caseId", self._check_id(case_id, "case id") if case_id is not None else None),
            (
                "archivedCaseId",
                self._check_id(archived_case_id, "archived case id")
                if archived_case_id is not None
                else None,
            ),
            ("name", name),
        ]
        return self.search("bpm/archivedCaseDocument", filters=filters, order=order)

    def delete_archived_document_content(self, archived_document_id: str) -> None:
        """DELETE /API/bpm/archivedCaseDocument/{id} (API@bpm@archivedCaseDocument@{id}.yaml).

        Removes the file of one archived version; Bonita keeps the version's record for audit.
        """
        archived = self._check_id(archived_document_id, "archived document id")
        self.request(Request("DELETE", f"/API/bpm/archivedCaseDocument/{archived}"))

    def document_versions(self, document_id: str) -> list[dict[str, Any]]:
        """Every version of a document, oldest first: its archived versions, then the live one."""
        versions = list(self.search_archived_documents(source_object_id=document_id))
        with suppress(BpmNotFound):  # once the case ended, every version is archived
            versions.append(self.get_document(document_id))
        return sorted(versions, key=lambda d: _int(d.get("version")))

    def upload_file(
        self, source: Any, *, file_name: str | None = None, source_conn_id: str | None = None
    ) -> dict[str, Any]:
        """POST /API/formFileUpload (API@formFileUpload.yaml), multipart field ``file``.

        Returns ``{filename, tempPath, contentType}``: ``tempPath`` names the file in the tenant's
        temporary folder for a caseDocument ``file`` or a FILE contract input. ``source`` is a
        local path, an object-storage URL (``s3://...``, read with ``source_conn_id``), an
        ObjectStoragePath or bytes (then ``file_name`` is required).
        """
        name, content = self._read_source(source, file_name, source_conn_id)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        # Read into memory (Bonita caps documents at a few tens of MB) so a retry re-sends it whole.
        request = Request("POST", "/API/formFileUpload", files={"file": (name, content, content_type)})
        reply = self.request(request)
        body = self._json(request, reply)
        if not isinstance(body, Mapping) or not body.get("tempPath") or not isinstance(body["tempPath"], str):
            raise self._unexpected(request, reply, "no tempPath in the upload answer")
        self._optional(request, reply, body, "filename", str, "the upload answer")
        return dict(body)

    def _read_source(self, source: Any, file_name: str | None, conn_id: str | None) -> tuple[str, bytes]:
        if isinstance(source, bytes | bytearray):
            if not file_name:
                raise BpmConfigError("uploading bytes needs a file_name", conn_id=self.bpm_conn_id)
            return file_name, bytes(source)
        text = os.fspath(source) if isinstance(source, str | os.PathLike) else None
        if text is not None and "://" not in text:
            from pathlib import Path

            path = Path(text)
            if not path.is_file():
                raise BpmConfigError(f"no local file {text!r} to upload", conn_id=self.bpm_conn_id)
            return file_name or path.name, path.read_bytes()
        from airflow.sdk import ObjectStoragePath

        storage = (
            source if isinstance(source, ObjectStoragePath) else ObjectStoragePath(text, conn_id=conn_id)
        )
        try:
            return file_name or storage.name, storage.read_bytes()
        except FileNotFoundError:
            raise BpmConfigError(f"no file {str(storage)!r} to upload", conn_id=self.bpm_conn_id) from None

    def add_document(
        self,
        case_id: str,
        name: str,
        *,
        source: Any = None,
        url: str | None = None,
        file_name: str | None = None,
        description: str | None = None,
        source_conn_id: str | None = None,
    ) -> dict[str, Any]:
        """POST /API/bpm/caseDocument (ProcessInstanceDocumentCreateRequest.yaml).

        Give ``source`` (a file, uploaded first with :meth:`upload_file`) or ``url`` (an external
        document: Bonita keeps the link, ``isInternal`` is false).
        """
        payload: dict[str, Any] = {"caseId": self._check_id(case_id, "case id"), "name": name}
        payload.update(self._document_content(source, url, file_name, source_conn_id))
        if description is not None:
            payload["description"] = description
        request = Request("POST", "/API/bpm/caseDocument", json=payload)
        reply = self.request(request)
        return self._need_object(request, reply, self._json(request, reply), "the new document")

    def update_document(
        self,
        document_id: str,
        *,
        source: Any = None,
        url: str | None = None,
        file_name: str | None = None,
        description: str | None = None,
        source_conn_id: str | None = None,
    ) -> dict[str, Any]:
        """PUT /API/bpm/caseDocument/{id} (ProcessInstanceDocumentUpdateRequest.yaml): a new version."""
        payload = self._document_content(source, url, file_name, source_conn_id)
        if description is not None:
            payload["description"] = description
        request = Request(
            "PUT", f"/API/bpm/caseDocument/{self._check_id(document_id, 'document id')}", json=payload
        )
        reply = self.request(request)
        if not reply.body.strip():
            return {}
        return self._need_object(request, reply, self._json(request, reply), "the document")

    def _document_content(
        self, source: Any, url: str | None, file_name: str | None, conn_id: str | None
    ) -> dict[str, Any]:
        if (source is None) == (url is None):
            raise BpmConfigError(
                "give exactly one of source (a file) or url (an external document)", conn_id=self.bpm_conn_id
            )
        if url is not None:
            return {"url": url}
        upload = self.upload_file(source, file_name=file_name, source_conn_id=conn_id)
        local_name = file_name or upload.get("filename") or os.path.basename(str(source))
        return {"file": upload["tempPath"], "fileName": local_name}

    def delete_document(self, document_id: str) -> None:
        """DELETE /API/bpm/caseDocument/{id} (API@bpm@caseDocument@{id}.yaml)."""
        self.request(Request("DELETE", f"/API/bpm/caseDocument/{self._check_id(document_id, 'document id')}"))


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
