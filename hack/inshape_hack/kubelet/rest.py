"""A small JSON client for kube-apiserver: the kubelet works on plain dicts, as the API does."""

from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

JSON = dict[str, Any]


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class Rest:
    """Talks to one apiserver with a client certificate or a bearer token."""

    def __init__(
        self,
        server: str,
        ca_file: str,
        *,
        cert_file: str | None = None,
        key_file: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.server = server.rstrip("/")
        context = ssl.create_default_context(cafile=ca_file)
        if cert_file and key_file:
            context.load_cert_chain(cert_file, key_file)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._pool = urllib3.PoolManager(
            ssl_context=context, timeout=urllib3.Timeout(total=timeout), maxsize=4, retries=False
        )

    def request(
        self,
        method: str,
        path: str,
        body: JSON | None = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        url = self.server + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json", **self._headers}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        response = self._pool.request(method, url, body=data, headers=headers)
        text = response.data.decode(errors="replace")
        if response.status >= 400:
            raise ApiError(response.status, text)
        parsed: JSON = json.loads(text) if text else {}
        return parsed

    def get(self, path: str, query: dict[str, str] | None = None) -> JSON:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body)

    def put(self, path: str, body: JSON) -> JSON:
        return self.request("PUT", path, body)

    def merge_patch(self, path: str, body: JSON) -> JSON:
        # Merge patch replaces lists whole, which is what a status writer wants.
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path: str, body: JSON | None = None) -> JSON:
        return self.request("DELETE", path, body)


def pod_path(namespace: str, name: str, sub: str = "") -> str:
    path = f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}"
    return f"{path}/{sub}" if sub else path
