"""Bench driver for Scripts/bench: starts the daemon, measures, prints a table and writes JSON."""
import argparse, json, os, socket, subprocess, threading, time
import paho.mqtt.client as mqtt

p = argparse.ArgumentParser()
p.add_argument("--daemon"); p.add_argument("--config"); p.add_argument("--mqtt-port", type=int)
p.add_argument("--commands", type=int, default=200); p.add_argument("--out")
p.add_argument("--http-port", type=int, default=0)
a = p.parse_args()

lock = threading.Condition()
seen = []  # (monotonic time, topic, payload)


def on_message(_c, _u, m):
    with lock:
        seen.append((time.monotonic(), m.topic, m.payload))
        lock.notify_all()


c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}")
c.on_message = on_message
c.connect("127.0.0.1", a.mqtt_port)
# Like the daemon, the driver disables Nagle, or its own delayed ACKs would be measured.
c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
c.loop_start()
c.subscribe("heatbridge/#", qos=1)
c.subscribe("bench/floor", qos=1)
time.sleep(0.5)


def wait_for(pred, timeout=30.0):
    end = time.monotonic() + timeout
    with lock:
        while True:
            for item in seen:
                if pred(item):
                    return item
            left = end - time.monotonic()
            if left <= 0:
                raise SystemExit("bench: timed out waiting for the daemon")
            lock.wait(left)


# Start-to-first-publish: from exec to the first message the daemon publishes.
t0 = time.monotonic()
daemon = subprocess.Popen([a.daemon, "run", "--config", a.config], stderr=open(a.config + ".log", "w"))
first = wait_for(lambda i: i[0] > t0 and i[1].startswith("heatbridge/"))
startup_ms = (first[0] - t0) * 1000
wait_for(lambda i: i[1] == "heatbridge/bosch-101000001/dhw1/state")
ready_ms = (time.monotonic() - t0) * 1000

# Idle memory with the demo scenario after the first polls settle.
time.sleep(5)


def proc_kb(field, path):
    for line in open(path):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


rss_kb = proc_kb("VmRSS", f"/proc/{daemon.pid}/status")
hwm_kb = proc_kb("VmHWM", f"/proc/{daemon.pid}/status")
private_kb = proc_kb("Private_Clean", f"/proc/{daemon.pid}/smaps_rollup") + proc_kb("Private_Dirty", f"/proc/{daemon.pid}/smaps_rollup")
anon_kb = proc_kb("RssAnon", f"/proc/{daemon.pid}/status")


def round_trips(topic_set, topic_result, payload_for, done_pred, n):
    out = []
    for i in range(n):
        cid = f"b{i}-{time.monotonic_ns()}"
        t = time.monotonic()
        c.publish(topic_set, payload_for(cid), qos=1)
        got = wait_for(lambda it: it[0] >= t and it[1] == topic_result and done_pred(it[2], cid))
        out.append((got[0] - t) * 1000)
    return out


def is_done(payload, cid):
    try:
        j = json.loads(payload)
    except ValueError:
        return False
    return j.get("id") == cid and j.get("status") in ("done", "failed", "rejected", "expired")


topic = "heatbridge/bosch-101000001/dhw1/charge"
actions = ["start", "stop"]
charge = round_trips(topic + "/set", topic + "/result",
                     lambda cid: json.dumps({"id": cid, "action": actions[hash(cid) % 2]}), is_done, a.commands)
failed = sum(1 for t, tp, pl in seen if tp == topic + "/result" and b'"status":"failed"' in pl)
floor = round_trips("bench/floor", "bench/floor", lambda cid: cid.encode(), lambda pl, cid: pl == cid.encode(), a.commands)
rss_after_kb = proc_kb("VmRSS", f"/proc/{daemon.pid}/status")

# The status page and /metrics under use: 200 loads of each, their latency and what they leave in memory.
http_ms, rss_after_http_kb = [], 0
if a.http_port:
    import urllib.request
    for i in range(400):
        path = "/metrics" if i % 2 == 0 else "/"
        t = time.monotonic()
        urllib.request.urlopen(f"http://127.0.0.1:{a.http_port}{path}", timeout=5).read()
        http_ms.append((time.monotonic() - t) * 1000)
    rss_after_http_kb = proc_kb("VmRSS", f"/proc/{daemon.pid}/status")
daemon.terminate()
daemon.wait(timeout=10)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


size = os.path.getsize(a.daemon)
stripped = a.daemon + ".stripped"
subprocess.run(["strip", "-o", stripped, a.daemon], check=True)
stripped_size = os.path.getsize(stripped)

result = {
    "binary_bytes": size, "binary_stripped_bytes": stripped_size,
    "idle_rss_kb": rss_kb, "idle_hwm_kb": hwm_kb, "idle_private_kb": private_kb, "idle_anon_kb": anon_kb,
    "rss_after_commands_kb": rss_after_kb,
    "startup_to_first_publish_ms": round(startup_ms, 1), "startup_to_device_state_ms": round(ready_ms, 1),
    "charge_commands": a.commands, "charge_failed": failed,
    "charge_roundtrip_ms": {"p50": round(pct(charge, 50), 2), "p99": round(pct(charge, 99), 2), "max": round(max(charge), 2)},
    "http_requests": len(http_ms), "rss_after_http_kb": rss_after_http_kb,
    "http_ms": {"p50": round(pct(http_ms, 50), 2), "p99": round(pct(http_ms, 99), 2)} if http_ms else None,
    "mqtt_floor_roundtrip_ms": {"p50": round(pct(floor, 50), 2), "p99": round(pct(floor, 99), 2), "max": round(max(floor), 2)},
}
json.dump(result, open(a.out, "w"), indent=2)
rows = [
    ("binary (static stdlib), bytes", f"{size:,}"), ("binary stripped, bytes", f"{stripped_size:,}"),
    ("idle RSS", f"{rss_kb / 1024:.1f} MiB"), ("idle private (smaps_rollup)", f"{private_kb / 1024:.1f} MiB"),
    ("idle anonymous (RssAnon)", f"{anon_kb / 1024:.1f} MiB"), (f"RSS after {a.commands} commands", f"{rss_after_kb / 1024:.1f} MiB"),
    ("start -> first publish", f"{startup_ms:.0f} ms"), ("start -> device state", f"{ready_ms:.0f} ms"),
    ("charge set -> done p50", f"{pct(charge, 50):.2f} ms"), ("charge set -> done p99", f"{pct(charge, 99):.2f} ms"),
    ("charge failures", str(failed)),
    ("floor pub -> sub p50", f"{pct(floor, 50):.2f} ms"), ("floor pub -> sub p99", f"{pct(floor, 99):.2f} ms"),
]
if http_ms:
    rows += [("status page + /metrics p50 / p99", f"{pct(http_ms, 50):.2f} / {pct(http_ms, 99):.2f} ms"),
             (f"RSS after {len(http_ms)} page and metrics loads", f"{rss_after_http_kb / 1024:.1f} MiB")]
w = max(len(r[0]) for r in rows)
print()
for k, v in rows:
    print(f"  {k.ljust(w)}  {v}")
print(f"\n  written to {a.out}")
