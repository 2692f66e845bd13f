"""HTTP inference requests that have crashed, or could crash, a Triton server: absurd declared shapes
(JSON and binary), negative and overflowing dimensions, data that disagrees with its shape, binary
sizes that disagree with the body. Sent by the serving tests and `benchmarks/serve_load.py --soak`,
which check that the server refuses each one and stays up.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from dataclasses import dataclass, field

HUGE = 1 << 40  # 2**40 rows: terabytes if a server allocates what is declared


@dataclass(frozen=True)
class HostileRequest:
    what: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json(name: str, shape: list[int], datatype: str, data: list[int] | list[str]) -> bytes:
    return json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}).encode()


def _binary(name: str, shape: list[int], datatype: str, raw: bytes,
            size: int | None = None) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": datatype,
                                     "parameters": {"binary_data_size": len(raw) if size is None else size}}]}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header)),
                          "Content-Type": "application/octet-stream"}


def hostile_requests(name: str, datatype: str, row: list[int]) -> list[HostileRequest]:
    """Requests against one input `name` of `datatype` whose rows have shape `row`."""
    values = math.prod(row)
    one = [0] if datatype != "BYTES" else ["x"]
    return [
        HostileRequest("JSON, 2**40 rows", _json(name, [HUGE, *row], datatype, one)),
        HostileRequest("JSON, 2**40 values in a row", _json(name, [1, HUGE], datatype, one)),
        HostileRequest("JSON, 2**20 rows (GBs)", _json(name, [1 << 20, *row], datatype, one)),
        HostileRequest("JSON, 2**62 x 2**62 (overflows)", _json(name, [1 << 62, 1 << 62], datatype, one)),
        HostileRequest("JSON, a negative dimension", _json(name, [-1, *row], datatype, one)),
        HostileRequest("JSON, data shorter than its shape", _json(name, [1, *row], datatype, one)),
        HostileRequest("JSON, an input the model lacks, 2**40 rows",
                       _json("not_an_input", [HUGE, *row], datatype, one)),
        HostileRequest("binary, 2**40 rows, 4 bytes sent", *_binary(name, [HUGE, *row], datatype, b"\0" * 4)),
        HostileRequest("binary, binary_data_size 2**40 > body", *_binary(name, [1, *row], datatype, b"\0" * 4, HUGE)),
        HostileRequest("binary, fewer bytes than the shape",
                       *_binary(name, [1, *row], datatype, b"\0" * (4 * values - 4))),
    ]


def post(http_url: str, model: str, request: HostileRequest, timeout: float = 60) -> tuple[int | None, str]:
    """(HTTP status, body text) for one request; status None when the connection failed (the
    server died or hung up)."""
    call = urllib.request.Request(f"http://{http_url}/v2/models/{model}/infer", data=request.body,
                                  headers=request.headers)
    try:
        with urllib.request.urlopen(call, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except OSError as exc:
        return None, f"{type(exc).__name__}: {exc}"
