/// `/metrics` in the Prometheus text format (version 0.0.4), rendered from the bridge's status document and the
/// cloud request histograms.
///
/// Hand-written rather than through swift-metrics + swift-prometheus: every figure already exists once, in the
/// bridge's own state (the same counters `bridge/health` publishes), so the exposition is a rendering of one
/// snapshot taken on the actor, not a second set of counters kept in step at thirty call sites; and the daemon
/// links no registry (footprint). Names follow Prometheus' conventions: `heatbridge_` prefix, `_total` for
/// counters, base units (seconds, bytes).
public enum MetricsExposition {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func render(status doc: JSONValue, requests: [String: RequestMetrics.Account]) -> String {
        var out = Writer()
        let health = doc["health"] ?? .null

        out.family("heatbridge_build_info", "gauge", "Version of the running daemon and the hash of its config file.")
        out.sample("heatbridge_build_info", ["version": doc["version"]?.stringValue ?? "", "config_hash": doc["config_hash"]?.stringValue ?? ""], 1)
        out.family("heatbridge_uptime_seconds", "gauge", "Seconds since the daemon started.")
        out.sample("heatbridge_uptime_seconds", [:], health["uptime_s"]?.doubleValue ?? 0)
        out.family("heatbridge_resident_memory_bytes", "gauge", "Resident set size of the daemon.")
        out.sample("heatbridge_resident_memory_bytes", [:], health["rss_bytes"]?.doubleValue ?? 0)
        out.family("heatbridge_ready", "gauge", "1 while the bridge takes commands (its store writes).")
        out.sample("heatbridge_ready", [:], health["ready"] == true ? 1 : 0)
        out.family("heatbridge_outbox_depth", "gauge", "Commands accepted and not finished yet.")
        out.sample("heatbridge_outbox_depth", [:], health["outbox_depth"]?.doubleValue ?? 0)

        let store = health["store"] ?? .null
        out.family("heatbridge_store_writable", "gauge", "1 while the store takes writes.")
        out.sample("heatbridge_store_writable", [:], store["writable"] == false ? 0 : 1)
        out.family("heatbridge_store_errors_total", "counter", "Store operations that failed since start.")
        out.sample("heatbridge_store_errors_total", [:], store["errors"]?.doubleValue ?? 0)
        if let free = store["free_bytes"]?.doubleValue {
            out.family("heatbridge_store_free_bytes", "gauge", "Free bytes on the file system that holds the store.")
            out.sample("heatbridge_store_free_bytes", [:], free)
        }

        let mqtt = health["mqtt"] ?? .null
        for (key, help) in [
            ("connects", "Connections made to the broker."), ("published", "Messages published."),
            ("publish_failures", "Publishes the broker did not take."), ("received", "Messages received."),
        ] {
            out.family("heatbridge_mqtt_\(key)_total", "counter", help)
            out.sample("heatbridge_mqtt_\(key)_total", [:], mqtt[key]?.doubleValue ?? 0)
        }

        let accounts = doc["accounts"]?.arrayValue ?? []
        let states = ["starting", "ready", "degraded", "rate_limited", "offline", "auth_required"]
        out.family("heatbridge_account_state", "gauge", "1 for the state each account is in.")
        for a in accounts {
            let name = a["name"]?.stringValue ?? ""
            let current = a["state"]?.stringValue ?? ""
            for s in Set(states + [current]).sorted() where !s.isEmpty {
                out.sample("heatbridge_account_state", ["account": name, "state": s], s == current ? 1 : 0)
            }
        }
        for (key, metric, help) in [
            ("polls", "heatbridge_polls_total", "Polls of the account's cloud."),
            ("errors", "heatbridge_poll_errors_total", "Polls that failed."),
            ("rate_limited", "heatbridge_rate_limited_total", "Answers 429 (rate limited) from the cloud."),
            ("commands", "heatbridge_account_commands_total", "Commands sent to the account's cloud."),
        ] {
            out.family(metric, "counter", help)
            for a in accounts { out.sample(metric, ["account": a["name"]?.stringValue ?? ""], a["stats"]?[key]?.doubleValue ?? 0) }
        }
        let pushed = accounts.filter { $0["push"] != nil }
        if !pushed.isEmpty {
            for (key, help) in [
                ("events", "Pushed events received."), ("applied", "Pushed events that changed the state."),
                ("duplicates", "Pushed events seen before."), ("stale", "Pushed events older than what was known."),
            ] {
                out.family("heatbridge_push_\(key)_total", "counter", help)
                for a in pushed {
                    out.sample("heatbridge_push_\(key)_total", ["account": a["name"]?.stringValue ?? ""], a["push"]?[key]?.doubleValue ?? 0)
                }
            }
            out.family("heatbridge_push_live", "gauge", "1 while events arrive (polls slowed to the reconcile interval).")
            for a in pushed { out.sample("heatbridge_push_live", ["account": a["name"]?.stringValue ?? ""], a["push"]?["state"] == "live" ? 1 : 0) }
        }

        if !requests.isEmpty {
            out.family("heatbridge_cloud_requests_total", "counter", "Cloud requests by outcome (HTTP status class, 429, timeout, error).")
            for (account, m) in requests.sorted(by: { $0.key < $1.key }) {
                for (outcome, n) in m.outcomes.sorted(by: { $0.key < $1.key }) {
                    out.sample("heatbridge_cloud_requests_total", ["account": account, "outcome": outcome], Double(n))
                }
            }
            out.family("heatbridge_cloud_request_duration_seconds", "histogram", "Time from sending a cloud request to its answer.")
            for (account, m) in requests.sorted(by: { $0.key < $1.key }) {
                for (i, bound) in RequestMetrics.bounds.enumerated() {
                    out.sample(
                        "heatbridge_cloud_request_duration_seconds_bucket", ["account": account, "le": JSONValue.format(bound)], Double(m.buckets[i]))
                }
                out.sample("heatbridge_cloud_request_duration_seconds_bucket", ["account": account, "le": "+Inf"], Double(m.buckets.last ?? 0))
                out.sample("heatbridge_cloud_request_duration_seconds_sum", ["account": account], m.sumS)
                out.sample("heatbridge_cloud_request_duration_seconds_count", ["account": account], Double(m.buckets.last ?? 0))
            }
        }

        out.family("heatbridge_commands_ended_total", "counter", "Commands by how they ended: final status and result code.")
        for (status, codes) in (doc["commands_ended"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
            for (code, n) in (codes.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
                out.sample("heatbridge_commands_ended_total", ["status": status, "code": code], n.doubleValue ?? 0)
            }
        }

        let devices = doc["devices"]?.arrayValue ?? []
        out.family("heatbridge_device_online", "gauge", "1 when the cloud reports the device online.")
        out.family("heatbridge_device_stale", "gauge", "1 when the device's state is older than stale_after_s.")
        out.family("heatbridge_device_age_seconds", "gauge", "Seconds since the device's state was last confirmed.")
        for d in devices {
            let labels = ["device": d["id"]?.stringValue ?? "", "account": d["account"]?.stringValue ?? ""]
            out.sample("heatbridge_device_online", labels, d["online"] == true ? 1 : 0)
            out.sample("heatbridge_device_stale", labels, d["stale"] == true ? 1 : 0)
            out.sample("heatbridge_device_age_seconds", labels, d["age_s"]?.doubleValue ?? 0)
        }
        return out.text
    }

    /// Collects families in order: each `# HELP`/`# TYPE` once, its samples right after it.
    struct Writer {
        var families: [(name: String, head: String, samples: [String])] = []

        mutating func family(_ name: String, _ type: String, _ help: String) {
            families.append((name, "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n", []))
        }

        mutating func sample(_ name: String, _ labels: [String: String], _ value: Double) {
            let base = Self.familyName(name)
            guard let i = families.lastIndex(where: { $0.name == base }) else { return }
            let l =
                labels.isEmpty
                ? ""
                : "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(MetricsExposition.escape($0.value))\"" }.joined(separator: ",") + "}"
            families[i].samples.append("\(name)\(l) \(MetricsExposition.number(value))\n")
        }

        static func familyName(_ sample: String) -> String {
            for suffix in ["_bucket", "_sum", "_count"]
            where sample.hasSuffix(suffix) && sample.hasPrefix("heatbridge_cloud_request_duration_seconds") {
                return String(sample.dropLast(suffix.count))
            }
            return sample
        }

        var text: String { families.map { $0.head + $0.samples.joined() }.joined() }
    }

    /// A label value as the text format wants it: backslash, double quote and line feed escaped.
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        return JSONValue.format(v)
    }
}
