#!/usr/bin/python3
"""pumptwin example client (Python, Debian's python3-grpcio).

Registers a pump, reads it back and its twin, sets a prescription, then watches alerts
for a bounded time. Uses the stubs the build generates into build/python (target
pumptwin_proto_python); point --stubs (or PUMPTWIN_PY_STUBS) at that directory.

Decision support for clinicians; not a medical device.

Output: one line per step, "<step>: ok ..." or "<step>: <STATUS_CODE> <message>".
Exit codes: 0 every step succeeded; 3 no step failed but some answered UNIMPLEMENTED
(a server build without that method); 1 a step failed; 2 usage error.
"""

import argparse
import os
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="pumptwin example client: register a pump, set a prescription, "
                    "watch alerts (docs/api.md, section Python).",
        epilog="Run with /usr/bin/python3 (Debian python3-grpcio, python3-protobuf).")
    p.add_argument("--target", default="127.0.0.1:50051",
                   help="pumptwind gRPC address host:port (default %(default)s)")
    p.add_argument("--stubs", default=os.environ.get("PUMPTWIN_PY_STUBS"),
                   help="directory holding the generated pumptwin/v1/*_pb2*.py "
                        "(default: $PUMPTWIN_PY_STUBS, else ../../build/python)")
    p.add_argument("--token", default=os.environ.get("PUMPTWIN_TOKEN"),
                   help="bearer token (default: $PUMPTWIN_TOKEN); registering needs admin")
    p.add_argument("--tls-ca", help="PEM CA file: use TLS and trust this CA")
    p.add_argument("--pump-id", default="py-demo-1", help="pump to register (default %(default)s)")
    p.add_argument("--clinic", default="demo-clinic", help="clinic of the pump")
    p.add_argument("--drug", default="morphine", help="drug library key (default %(default)s)")
    p.add_argument("--concentration-ug-per-ml", type=float, default=1000.0,
                   help="drug concentration in ug/mL (default %(default)s = 1 mg/mL)")
    p.add_argument("--rate-ul-per-day", type=float, default=500.0,
                   help="new continuous rate in uL/day (default %(default)s)")
    p.add_argument("--max-events", type=int, default=10,
                   help="stop watching alerts after this many events (default %(default)s)")
    p.add_argument("--timeout", type=float, default=5.0,
                   help="seconds to watch alerts, and deadline of each call (default %(default)s)")
    return p.parse_args(argv)


def load_stubs(stubs_dir):
    if not stubs_dir:
        stubs_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                 "..", "..", "build", "python")
    if not os.path.isfile(os.path.join(stubs_dir, "pumptwin", "v1", "twin_service_pb2_grpc.py")):
        sys.exit("pumptwin_client: no generated stubs in '%s': build the target "
                 "pumptwin_proto_python and pass --stubs BUILD/python" % stubs_dir)
    sys.path.insert(0, os.path.abspath(stubs_dir))
    from pumptwin.v1 import resources_pb2, twin_service_pb2, twin_service_pb2_grpc  # noqa: E402
    return resources_pb2, twin_service_pb2, twin_service_pb2_grpc


class Steps:
    """Runs client steps, printing one line each and remembering the worst outcome."""

    def __init__(self, grpc_module):
        self.grpc = grpc_module
        self.failed = False
        self.unimplemented = []

    def run(self, name, fn):
        try:
            detail = fn()
        except self.grpc.RpcError as e:
            code = e.code()
            print("%s: %s %s" % (name, code.name, e.details()), flush=True)
            if code == self.grpc.StatusCode.UNIMPLEMENTED:
                self.unimplemented.append(name)
            else:
                self.failed = True
            return False
        print("%s: ok %s" % (name, detail), flush=True)
        return True

    def exit_code(self):
        if self.failed:
            return 1
        return 3 if self.unimplemented else 0


def main(argv):
    args = parse_args(argv)
    import grpc  # Debian python3-grpcio
    pb, svc, svc_grpc = load_stubs(args.stubs)

    if args.tls_ca:
        with open(args.tls_ca, "rb") as f:
            channel = grpc.secure_channel(args.target, grpc.ssl_channel_credentials(f.read()))
    else:
        channel = grpc.insecure_channel(args.target)
    stub = svc_grpc.TwinServiceStub(channel)
    metadata = [("authorization", "Bearer " + args.token)] if args.token else []
    name = "pumps/" + args.pump_id
    steps = Steps(grpc)
    state = {}

    def register():
        pump = pb.Pump(
            pump_id=args.pump_id,
            profile=pb.PUMP_PROFILE_PROGRAMMABLE_PERISTALTIC,
            model_name="example 20 mL",
            reservoir_capacity_ul=20000.0,
            catheter_length_cm=60.0,
            catheter_inner_diameter_mm=0.53,
            implant_time_ms=int(time.time() * 1000) - 30 * 86400 * 1000,
            patient_ref="example-patient",
            clinic=args.clinic)
        rx = pb.Prescription(drug=args.drug, concentration_ug_per_ml=args.concentration_ug_per_ml,
                             mode=pb.THERAPY_MODE_SIMPLE_CONTINUOUS, rate_ul_per_day=400.0,
                             reason="initial programming")
        req = svc.RegisterPumpRequest(pump=pump, initial_prescription=rx,
                                      initial_reservoir_ul=18000.0,
                                      reason="python example client")
        try:
            got = stub.RegisterPump(req, metadata=metadata, timeout=args.timeout)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            return "%s (already registered)" % name
        return "%s lifecycle=%s" % (got.name, pb.PumpLifecycle.Name(got.lifecycle))

    def get_pump():
        got = stub.GetPump(svc.GetPumpRequest(name=name), metadata=metadata, timeout=args.timeout)
        return "%s clinic=%s profile=%s" % (got.name, got.clinic, pb.PumpProfile.Name(got.profile))

    def get_twin():
        t = stub.GetTwin(svc.GetTwinRequest(name=name), metadata=metadata, timeout=args.timeout)
        state["version"] = t.prescription_version
        return "pump_id=%s estimated_reservoir_ul=%.1f prescription_version=%d drug=%s" % (
            t.pump_id, t.estimated_reservoir_ul, t.prescription_version, t.drug)

    def set_prescription():
        rx = pb.Prescription(drug=args.drug, concentration_ug_per_ml=args.concentration_ug_per_ml,
                             mode=pb.THERAPY_MODE_SIMPLE_CONTINUOUS,
                             rate_ul_per_day=args.rate_ul_per_day, reason="python example client")
        req = svc.SetPrescriptionRequest(name=name, prescription=rx,
                                         expected_version=state.get("version", 1))
        resp = stub.SetPrescription(req, metadata=metadata, timeout=args.timeout)
        return "version=%d rate_ul_per_day=%.1f warnings=%d" % (
            resp.prescription.version, resp.prescription.rate_ul_per_day, len(resp.warnings))

    def watch_alerts():
        events = 0
        last = 0
        call = stub.WatchAlerts(svc.WatchAlertsRequest(from_cursor=0, clinic=args.clinic),
                                metadata=metadata, timeout=args.timeout)
        try:
            for ev in call:
                events += 1
                last = ev.cursor
                print("  alert cursor=%d %s %s %s" % (
                    ev.cursor, pb.AlertTransitionKind.Name(ev.transition), ev.alert.name,
                    pb.AlertType.Name(ev.alert.type)), flush=True)
                if events >= args.max_events:
                    call.cancel()
                    break
        except grpc.RpcError as e:
            # The bounded watch ends by our deadline or our cancel: both are a normal end.
            if e.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                raise
        return "events=%d last_cursor=%d" % (events, last)

    ok = steps.run("register_pump", register)
    if ok:
        steps.run("get_pump", get_pump)
        steps.run("get_twin", get_twin)
        steps.run("set_prescription", set_prescription)
    steps.run("watch_alerts", watch_alerts)
    channel.close()
    return steps.exit_code()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
