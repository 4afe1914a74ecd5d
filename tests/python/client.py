"""A client of an Entente node that is not written in Rust.

Generates Python stubs from proto/ with grpcio-tools, connects to the node's local
listener over mutual TLS with an analyst's certificate, runs the standard health check,
asks who it is, and pages through a search. Optionally validates a STIX bundle written
by `entente report export` with the stix2 library.

Prints one JSON object with what it saw; exits non-zero on any failure.
"""

import argparse
import json
import pathlib
import sys
import tempfile

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_tools import protoc

PROTO = pathlib.Path(__file__).resolve().parents[2] / "proto"


def stubs(out: pathlib.Path):
    """Generates the entente.v1 stubs into `out` and imports the control ones."""
    files = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    include = pathlib.Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        ["protoc", f"-I{PROTO}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
        + files
    )
    if code != 0:
        raise SystemExit(f"protoc failed on {files}")
    sys.path.insert(0, str(out))
    from entente.v1 import control_pb2, control_pb2_grpc  # noqa: E402

    return control_pb2, control_pb2_grpc


def validate_stix(path: str) -> dict:
    import stix2

    with open(path, encoding="utf-8") as f:
        text = f.read()
    bundle = stix2.parse(text, allow_custom=True, version="2.1")
    kinds = {}
    for obj in bundle.objects:
        kinds[obj.type] = kinds.get(obj.type, 0) + 1
    predefined = {
        m.id: json.loads(m.serialize())
        for m in (stix2.TLP_WHITE, stix2.TLP_GREEN, stix2.TLP_AMBER, stix2.TLP_RED)
    }
    for obj in json.loads(text)["objects"]:
        if obj["type"] == "marking-definition" and obj["id"] in predefined:
            if obj != predefined[obj["id"]]:
                raise SystemExit(f"TLP marking {obj['id']} differs from the STIX 2.1 definition")
    reports = [o for o in bundle.objects if o.type == "report"]
    for r in reports:
        ids = {o.id for o in bundle.objects}
        missing = [ref for ref in r.object_refs if ref not in ids]
        if missing:
            raise SystemExit(f"report {r.id} refers to objects not in the bundle: {missing}")
    return kinds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--page", type=int, default=2)
    parser.add_argument("--stix")
    args = parser.parse_args()

    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        control_pb2, control_pb2_grpc = stubs(pathlib.Path(tmp))
        credentials = grpc.ssl_channel_credentials(
            root_certificates=open(args.ca, "rb").read(),
            private_key=open(args.key, "rb").read(),
            certificate_chain=open(args.cert, "rb").read(),
        )
        # The node's certificate names localhost and 127.0.0.1.
        options = [("grpc.ssl_target_name_override", "localhost")]
        with grpc.secure_channel(args.addr, credentials, options) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            status = health.Check(health_pb2.HealthCheckRequest(service="entente.v1.Control"), timeout=10)
            result["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(status.status)
            control = control_pb2_grpc.ControlStub(channel)
            me = control.WhoAmI(control_pb2.WhoAmIRequest(), timeout=10)
            result["name"], result["role"] = me.name, me.role
            seen, cursor, pages = [], "", 0
            while True:
                page = control.SearchItems(
                    control_pb2.SearchItemsRequest(sender="US-BIS", limit=args.page, cursor=cursor),
                    timeout=10,
                )
                pages += 1
                seen.extend(item.item_id for item in page.items)
                cursor = page.next_cursor
                if not cursor:
                    break
            result["items"], result["pages"] = seen, pages
            try:
                control.SearchAudit(control_pb2.SearchAuditRequest(), timeout=10)
                result["audit"] = "allowed"
            except grpc.RpcError as e:
                result["audit"] = e.code().name
    if args.stix:
        result["stix"] = validate_stix(args.stix)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
