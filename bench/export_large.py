"""P1: one large file, the export vs ``curl -o`` of the same bytes from the same server.

The emulator (its own process) serves one generated file of ``--size`` bytes (default 1 GiB);
the export is given that file's process id, so both sides move the same single file.
Alternating rounds: ``curl -o`` into a local folder (the anchor), the export into a local folder,
and the export into S3 (a moto server in its own process), all at default settings. Printed:
throughput medians with min-max, each export's ratio to curl, and the export's own peak memory
growth (this process's peak RSS over its RSS before the export; the servers are elsewhere).

Also printed, for context only: what moto itself takes in (boto3's parallel ``upload_fileobj``
of as many bytes from memory), since the store, not the download, bounds the S3 side here.

Targets: both exports >= 0.9x curl, memory growth <= 16 MiB. Exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _export_setup import EmulatorProcess, peak_growth, questetra_hook, rmtree, summary

RATIO_TARGET = 0.9
MEMORY_TARGET_MIB = 16.0
MiB = 1024 * 1024


def _moto(conn) -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    conn.send(server.get_host_and_port())
    conn.recv()
    server.stop()


def curl(info: dict, out: str) -> None:
    file = info["files"][0]
    url = (
        f"{info['url']}/API/OR/ProcessInstance/File/download?id={file['id']}"
        f"&processDataInstanceId={file['data']}"
    )
    subprocess.run(
        [
            "curl",
            "-s",
            "-f",
            "-u",
            f"{info['user']}:{info['password']}",
            "-o",
            os.path.join(out, "f.bin"),
            url,
        ],
        check=True,
    )


def export(info: dict, destination: str, dest_conn_id: str | None = None) -> list:
    from airflow_bpm_provider.transfer.export import export_process_files

    with questetra_hook(info) as hook:
        return export_process_files(
            hook, destination, dest_conn_id=dest_conn_id, process_instance_ids=info["bench_ids"]
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 side")
    args = parser.parse_args()
    size = args.size * MiB

    context = mp.get_context("spawn")
    moto_conn, child = context.Pipe()
    moto = context.Process(target=_moto, args=(child,), daemon=True)
    moto.start()
    host, port = moto_conn.recv()
    conn_id = f"bench_s3_{uuid.uuid4().hex[:8]}"
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "bench-key",
            "password": "bench-secret",
            "extra": {"endpoint_url": f"http://{host}:{port}", "region_name": "us-east-1"},
        }
    )
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id="bench-key",
        aws_secret_access_key="bench-secret",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="bench")

    def store_ceiling(round_number: int) -> None:
        """boto3's own parallel upload of the same number of bytes from memory: what moto takes in."""
        from boto3.s3.transfer import TransferConfig

        class Zeros:
            def __init__(self) -> None:
                self.left = size

            def read(self, amount: int = -1) -> bytes:
                amount = self.left if amount < 0 else min(amount, self.left)
                self.left -= amount
                return bytes(amount)

        started = time.perf_counter()
        s3.upload_fileobj(Zeros(), "bench", f"ceiling-{round_number}", Config=TransferConfig())
        rates["store"].append(size / MiB / (time.perf_counter() - started))
        s3.delete_object(Bucket="bench", Key=f"ceiling-{round_number}")

    rates: dict[str, list[float]] = {"curl": [], "local": [], "s3": [], "store": []}
    failed_rounds: list[str] = []
    growth: dict[str, list[float]] = {"local": [], "s3": []}
    scratch = tempfile.mkdtemp(prefix="bench-export-large-", dir=os.path.expanduser("~"))
    try:
        with EmulatorProcess(layout=[1], file_size=size) as info:
            info["files"] = [f for f in info["files"] if f["size"] == size]
            export(info, os.path.join(scratch, "warm-up"))  # imports, first connection: not timed
            rmtree(os.path.join(scratch, "warm-up"))
            if not args.no_s3:
                export(info, "s3://bench/warm-up/", conn_id)  # s3fs and its session: not timed either
            sides = ["curl", "local"] + ([] if args.no_s3 else ["s3", "store"])
            for round_number in range(args.rounds):
                order = sides if round_number % 2 == 0 else list(reversed(sides))
                for side in order:
                    out = os.path.join(scratch, side)
                    rmtree(out)
                    started = time.perf_counter()
                    if side == "curl":
                        curl(info, out)
                    elif side == "store":
                        store_ceiling(round_number)
                        print(f"round {round_number + 1} store: {rates['store'][-1]:.0f} MiB/s", flush=True)
                        continue
                    elif side == "local":
                        _, mib = peak_growth(lambda out=out: export(info, out))
                        growth["local"].append(mib)
                    else:
                        from airflow_bpm_provider.exceptions import BpmError

                        prefix = f"s3://bench/round-{round_number}/"
                        try:
                            _, mib = peak_growth(lambda prefix=prefix: export(info, prefix, conn_id))
                        except BpmError as error:  # moto itself can fail under a GiB-sized upload
                            print(f"round {round_number + 1} s3: FAILED: {str(error).splitlines()[-1]}")
                            failed_rounds.append(side)
                            continue
                        growth["s3"].append(mib)
                    elapsed = time.perf_counter() - started
                    rates[side].append(size / MiB / elapsed)
                    print(f"round {round_number + 1} {side}: {rates[side][-1]:.0f} MiB/s", flush=True)
                    rmtree(out)
                    if side == "s3":
                        for item in s3.list_objects_v2(Bucket="bench").get("Contents", []):
                            s3.delete_object(Bucket="bench", Key=item["Key"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        moto_conn.send("stop")
        moto.join(timeout=20)

    print()
    print(
        f"one file of {args.size} MiB from the emulator; "
        f"medians (min-max) over {args.rounds} alternating rounds"
    )
    print("| side | MiB/s | ratio to curl -o | memory growth (MiB) |")
    print("|---|---|---|---|")
    print(f"| curl -o | {summary(rates['curl'])} | 1 | - |")
    ok = True
    for side in [s for s in ("local", "s3") if rates[s]]:
        ratios = [r / c for r, c in zip(rates[side], rates["curl"], strict=False)]
        print(f"| export to {side} | {summary(rates[side])} | {summary(ratios)} | {summary(growth[side])} |")
        if side == "s3":
            ceiling = [r / c for r, c in zip(rates["s3"], rates["store"], strict=False)]
            print(
                f"| (moto's own ceiling: boto3 upload_fileobj from memory) | {summary(rates['store'])} "
                f"| export/ceiling {summary(ceiling)} | - |"
            )
        met = statistics.median(ratios) >= RATIO_TARGET and max(growth[side]) <= MEMORY_TARGET_MIB
        print(
            f"  target export to {side} >= {RATIO_TARGET}x curl and <= {MEMORY_TARGET_MIB:.0f} MiB: "
            f"{'met' if met else 'MISSED'}"
        )
        ok = ok and met
    if failed_rounds:
        print(f"failed rounds: {failed_rounds}")
    return 0 if ok and not failed_rounds else 1


if __name__ == "__main__":
    sys.exit(main())
