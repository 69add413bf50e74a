"""P1: one large file, the export vs ``curl`` moving the same bytes from the same server.

The emulator (its own process) serves one generated file of ``--size`` bytes (default 1 GiB);
the export is given that file's process id, so every side moves the same single file.
Alternating rounds, all at default settings:

- ``curl -o`` into a local folder: the anchor of both targets (the issue's);
- ``curl -o`` then fsync of the file: what a durable copy costs on this disk (the export fsyncs
  before it publishes; ``curl -o`` leaves the bytes in the page cache), printed for context;
- as many bytes written from memory, then fsynced: a durable copy with no network at all (the
  export can beat it, as it starts pushing to disk while it downloads);
- the export into a local folder;
- ``curl | curl -T - --aws-sigv4`` into S3 (a moto server in its own process): the S3 anchor,
  the same download streamed into a PUT by curl;
- the export into S3;
- boto3's parallel ``upload_fileobj`` of as many bytes from memory: what moto itself takes in.

Printed: throughput medians with min-max, each export's ratios (per round, against the anchors
of the same round) and the export's own peak memory growth (this process's peak RSS over its
RSS before the export; the servers are elsewhere).

Targets: export to local >= 0.9x ``curl -o``; export to S3 >= 0.9x ``curl -o`` (the issue's)
and >= 0.9x the curl-into-S3 anchor; memory growth <= 16 MiB. Exits 1 when one is missed.
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
SIDES = ["curl", "curl+fsync", "disk", "local", "curl-s3", "s3", "store"]
S3_SIDES = {"curl-s3", "s3", "store"}


def _moto(conn) -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    conn.send(server.get_host_and_port())
    conn.recv()
    server.stop()


def file_url(info: dict) -> str:
    file = info["files"][0]
    return (
        f"{info['url']}/API/OR/ProcessInstance/File/download?id={file['id']}"
        f"&processDataInstanceId={file['data']}"
    )


def curl(info: dict, out: str, *, durable: bool = False) -> None:
    target = os.path.join(out, "f.bin")
    command = ["curl", "-s", "-f", "-u", f"{info['user']}:{info['password']}", "-o", target, file_url(info)]
    subprocess.run(command, check=True)
    if durable:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def disk_ceiling(out: str, size: int) -> None:
    """A durable copy without the network: ``size`` bytes from memory, then one fsync."""
    block = memoryview(bytearray(4 * MiB))
    fd = os.open(os.path.join(out, "disk.bin"), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        left = size
        while left:
            left -= os.write(fd, block[: min(left, len(block))])
        os.fsync(fd)
    finally:
        os.close(fd)


def curl_into_s3(info: dict, endpoint: str, key: str) -> None:
    """The download piped into a streamed, SigV4-signed PUT: curl's own way to put it into S3."""
    download = subprocess.Popen(
        ["curl", "-s", "-f", "-u", f"{info['user']}:{info['password']}", file_url(info)],
        stdout=subprocess.PIPE,
    )
    upload = subprocess.run(
        [
            "curl", "-sS", "-f", "-T", "-", "--aws-sigv4", "aws:amz:us-east-1:s3",
            "--user", "bench-key:bench-secret", "-o", os.devnull, f"{endpoint}/bench/{key}",
        ],
        stdin=download.stdout,
        check=False,
    )  # fmt: skip
    download.stdout.close()
    if download.wait() != 0 or upload.returncode != 0:
        raise RuntimeError(f"curl into S3 failed: download {download.returncode}, upload {upload.returncode}")


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
    load_before = " ".join(f"{value:.2f}" for value in os.getloadavg())

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

    rates: dict[str, list[float]] = {side: [] for side in SIDES}
    failed_rounds: list[str] = []
    growth: dict[str, list[float]] = {"local": [], "s3": []}
    scratch = tempfile.mkdtemp(prefix="bench-export-large-", dir=os.path.expanduser("~"))
    endpoint = f"http://{host}:{port}"
    try:
        with EmulatorProcess(layout=[1], file_size=size) as info:
            info["files"] = [f for f in info["files"] if f["size"] == size]
            export(info, os.path.join(scratch, "warm-up"))  # imports, first connection: not timed
            rmtree(os.path.join(scratch, "warm-up"))
            if not args.no_s3:
                export(info, "s3://bench/warm-up/", conn_id)  # s3fs and its session: not timed either
            sides = [side for side in SIDES if not (args.no_s3 and side in S3_SIDES)]
            for round_number in range(args.rounds):
                order = sides if round_number % 2 == 0 else list(reversed(sides))
                for side in order:
                    out = os.path.join(scratch, side)
                    rmtree(out)
                    started = time.perf_counter()
                    if side in ("curl", "curl+fsync"):
                        curl(info, out, durable=side == "curl+fsync")
                    elif side == "disk":
                        disk_ceiling(out, size)
                    elif side == "curl-s3":
                        curl_into_s3(info, endpoint, f"curl-{round_number}")
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
                    if side in S3_SIDES:
                        for item in s3.list_objects_v2(Bucket="bench").get("Contents", []):
                            s3.delete_object(Bucket="bench", Key=item["Key"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        moto_conn.send("stop")
        moto.join(timeout=20)

    def ratio(side: str, anchor: str) -> str:
        return summary([r / a for r, a in zip(rates[side], rates[anchor], strict=False)])

    def median_ratio(side: str, anchor: str) -> float:
        return statistics.median([r / a for r, a in zip(rates[side], rates[anchor], strict=False)])

    print()
    print(
        f"one file of {args.size} MiB from the emulator; medians (min-max) over {args.rounds} "
        f"alternating rounds; load average before the run {load_before}"
    )
    print("| side | MiB/s | ratio to curl -o | ratio to its own anchor | memory growth (MiB) |")
    print("|---|---|---|---|---|")
    print(f"| curl -o (anchor) | {summary(rates['curl'])} | 1 | - | - |")
    print(f"| curl -o, then fsync | {summary(rates['curl+fsync'])} | {ratio('curl+fsync', 'curl')} | - | - |")
    print(
        f"| write from memory, then fsync (no network) | {summary(rates['disk'])} "
        f"| {ratio('disk', 'curl')} | - | - |"
    )
    print(
        f"| export to local | {summary(rates['local'])} | {ratio('local', 'curl')} "
        f"| {ratio('local', 'curl+fsync')} (to curl -o + fsync); to write+fsync from memory "
        f"{ratio('local', 'disk')} | {summary(growth['local'])} |"
    )
    checks = [
        ("export to local >= 0.9x curl -o", median_ratio("local", "curl") >= RATIO_TARGET),
        ("export to local memory growth <= 16 MiB", max(growth["local"]) <= MEMORY_TARGET_MIB),
    ]
    figures = {
        "export to local >= 0.9x curl -o": f"{ratio('local', 'curl')}x ({summary(rates['local'])} MiB/s)",
        "export to local memory growth <= 16 MiB": f"{summary(growth['local'])} MiB",
    }
    if rates["s3"]:
        print(f"| curl into S3 (anchor) | {summary(rates['curl-s3'])} | {ratio('curl-s3', 'curl')} | 1 | - |")
        print(
            f"| export to S3 | {summary(rates['s3'])} | {ratio('s3', 'curl')} "
            f"| {ratio('s3', 'curl-s3')} (to curl into S3) | {summary(growth['s3'])} |"
        )
        print(
            f"| moto's own ceiling (boto3 upload_fileobj from memory) | {summary(rates['store'])} "
            f"| {ratio('store', 'curl')} | export/ceiling {ratio('s3', 'store')} | - |"
        )
        checks += [
            ("export to S3 >= 0.9x curl -o", median_ratio("s3", "curl") >= RATIO_TARGET),
            ("export to S3 >= 0.9x curl into S3", median_ratio("s3", "curl-s3") >= RATIO_TARGET),
            ("export to S3 memory growth <= 16 MiB", max(growth["s3"]) <= MEMORY_TARGET_MIB),
        ]
        figures |= {
            "export to S3 >= 0.9x curl -o": f"{ratio('s3', 'curl')}x ({summary(rates['s3'])} MiB/s)",
            "export to S3 >= 0.9x curl into S3": f"{ratio('s3', 'curl-s3')}x",
            "export to S3 memory growth <= 16 MiB": f"{summary(growth['s3'])} MiB",
        }
    from _summary import record

    for name, met in checks:
        print(f"  target {name}: {'met' if met else 'MISSED'}")
        record("export_large", f"P1: {name}", figures[name], met)
    if failed_rounds:
        print(f"failed rounds: {failed_rounds}")
    return 0 if all(met for _, met in checks) and not failed_rounds else 1


if __name__ == "__main__":
    sys.exit(main())
