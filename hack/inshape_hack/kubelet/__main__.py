"""`python -m inshape_hack.kubelet`: run the local kubelet until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from inshape_hack.kubelet.agent import Kubelet, KubeletConfig
from inshape_hack.kubelet.logserver import serve_logs
from inshape_hack.kubelet.rest import Rest


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="inshape-kubelet", description=__doc__)
    parser.add_argument("--server", required=True, help="https://host:port of kube-apiserver")
    parser.add_argument("--ca", required=True, type=Path, help="cluster CA certificate")
    parser.add_argument("--client-cert", required=True, type=Path)
    parser.add_argument("--client-key", required=True, type=Path)
    parser.add_argument("--serving-cert", required=True, type=Path)
    parser.add_argument("--serving-key", required=True, type=Path)
    parser.add_argument("--node-name", default="inshape-node")
    parser.add_argument("--host-ip", default="127.0.0.1")
    parser.add_argument(
        "--pod-ip-start",
        default="127.0.0.2",
        help="first loopback pod IP; launchers pick one per cluster",
    )
    parser.add_argument("--port", type=int, required=True, help="TLS port for /containerLogs")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--version", default="v0.0.0", help="kubeletVersion to report")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = KubeletConfig(
        node_name=args.node_name,
        host_ip=args.host_ip,
        port=args.port,
        server=args.server,
        ca_file=args.ca,
        state_dir=args.state_dir,
        python_bin=Path(sys.executable).parent,
        pod_ip_start=args.pod_ip_start,
        version=args.version,
    )
    rest = Rest(
        args.server, str(args.ca), cert_file=str(args.client_cert), key_file=str(args.client_key)
    )
    kubelet = Kubelet(config, rest)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = serve_logs(
        args.host_ip,
        args.port,
        cert=args.serving_cert,
        key=args.serving_key,
        client_ca=args.ca,
        finder=kubelet.find_log,
    )
    try:
        kubelet.register()
        logging.getLogger("inshape.kubelet").info("Node %s registered", args.node_name)
        kubelet.run_forever(stop)
    finally:
        kubelet.shutdown()
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
