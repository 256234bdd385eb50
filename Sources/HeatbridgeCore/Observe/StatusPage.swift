/// The box's status page: one server-rendered HTML document from the status document, no script, no outside
/// asset (the listener's Content-Security-Policy forbids both), readable on a phone. Every value that came from
/// a cloud, a client or the config is escaped: a device named `<script>` shows as that text.
public enum StatusPage {
    public static let contentType = "text/html; charset=utf-8"

    public static func render(_ doc: JSONValue) -> String {
        let health = doc["health"] ?? .null
        let accounts = doc["accounts"]?.arrayValue ?? []
        let devices = doc["devices"]?.arrayValue ?? []
        let commands = doc["commands"]?.arrayValue ?? []
        let healthy = health["ready"] == true && accounts.allSatisfy { ["ready", "starting"].contains($0["state"]?.stringValue ?? "") }
        var h = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta http-equiv="refresh" content="30">
            <title>heatbridge \(e(doc["version"]))</title>
            <style>
            body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:12px;color:#1b1f24;background:#f6f7f9}
            h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:20px 0 6px}
            .meta{color:#57606a;font-size:13px}
            .pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:13px;font-weight:600}
            .ok{background:#dafbe1;color:#116329}.warn{background:#fff8c5;color:#7d4e00}.bad{background:#ffebe9;color:#a40e26}
            .card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:8px 10px;margin:6px 0;overflow-wrap:anywhere}
            code{font-size:13px}ol{margin:4px 0;padding-left:22px}
            </style></head><body>
            <h1>heatbridge <span class="pill \(healthy ? "ok" : "bad")" id="health">\(healthy ? "healthy" : "needs attention")</span></h1>
            <div class="meta">version \(e(doc["version"])) · config \(e(doc["config_hash"])) · up \(duration(health["uptime_s"]?.doubleValue ?? 0)) · \(e(doc["now"]))</div>

            """
        h += "<h2>Accounts</h2>\n"
        for a in accounts {
            let state = a["state"]?.stringValue ?? "unknown"
            var line = "<div class=\"card account\"><b>\(e(a["name"]))</b> <span class=\"meta\">\(e(a["vendor"]))</span> "
            line += "<span class=\"pill \(stateClass(state))\">\(e(.string(state)))</span>"
            if let err = a["error"]?.stringValue { line += "<div class=\"meta\">\(e(.string(err)))</div>" }
            if let p = a["push"], p != .null {
                line += "<div class=\"meta\">push: \(e(p["state"])) · \(e(p["events"])) events · last \(e(p["last_event_at"]))</div>"
            }
            let s = a["stats"] ?? .null
            line +=
                "<div class=\"meta\">polls \(e(s["polls"])) · errors \(e(s["errors"])) · answers 429: \(e(s["rate_limited"])) · commands \(e(s["commands"]))</div>"
            if let nv = a["not_visible"]?.arrayValue, !nv.isEmpty {
                line += "<div class=\"meta\">not visible to its credentials: \(nv.map { e($0) }.joined(separator: ", "))</div>"
            }
            h += line + "</div>\n"
        }
        h += "<h2>Devices</h2>\n<div id=\"devices\">\n"
        if devices.isEmpty { h += "<div class=\"card meta\">none yet</div>\n" }
        for d in devices {
            let online = d["online"] == true ? "online" : (d["online"] == false ? "offline" : "unknown")
            var card = "<div class=\"card device\"><b>\(e(d["name"] != .null ? d["name"] : d["id"]))</b> "
            card += "<span class=\"pill \(online == "online" ? "ok" : "bad")\">\(online)</span>"
            if d["stale"] == true { card += " <span class=\"pill warn\">stale</span>" }
            card +=
                "<div class=\"meta\"><code>\(e(d["id"]))</code> · \(e(d["account"])) · updated \(duration(d["age_s"]?.doubleValue ?? 0)) ago (\(e(d["source"])))</div>"
            if let err = d["error"], err != .null { card += "<div class=\"meta\">\(e(err["code"])): \(e(err["message"]))</div>" }
            h += card + "</div>\n"
        }
        h += "</div>\n"
        h += "<h2>Last commands</h2>\n"
        if commands.isEmpty { h += "<div class=\"card meta\">none since the start</div>\n" }
        for c in commands {
            let results = c["results"]?.arrayValue ?? []
            let last = results.last?["status"]?.stringValue ?? ""
            var card = "<div class=\"card command\"><b>\(e(c["target"]))</b> <span class=\"meta\">id <code>\(e(c["id"]))</code></span>"
            card +=
                " <span class=\"pill \(["done"].contains(last) ? "ok" : (["failed", "rejected", "expired"].contains(last) ? "bad" : "warn"))\">\(e(.string(last)))</span><ol>"
            for r in results {
                card += "<li>\(e(r["status"]))\(r["code"].flatMap(\.stringValue).map { " · " + escape($0) } ?? "")"
                card += "\(r["message"].flatMap(\.stringValue).map { " — " + escape($0) } ?? "") <span class=\"meta\">\(e(r["at"]))</span></li>"
            }
            h += card + "</ol></div>\n"
        }
        let store = health["store"] ?? .null
        h += "<h2>Outbox and store</h2>\n<div class=\"card\">commands waiting: \(e(health["outbox_depth"])) · store "
        h +=
            store["writable"] == false
            ? "<span class=\"pill bad\">not writable</span> \(e(store["problem"]))" : "<span class=\"pill ok\">writes</span>"
        if let free = store["free_bytes"]?.doubleValue { h += " · \(bytes(free)) free" }
        h += " · store errors: \(e(store["errors"])) · memory \(bytes(health["rss_bytes"]?.doubleValue ?? 0))</div>\n"
        h +=
            "<p class=\"meta\">Also: <code>/metrics</code> (Prometheus), <code>/healthz</code>; on MQTT <code>bridge/request/status</code>.</p>\n</body></html>\n"
        return h
    }

    static func stateClass(_ s: String) -> String {
        switch s {
        case "ready": return "ok"
        case "starting", "degraded", "rate_limited": return "warn"
        default: return "bad"
        }
    }

    /// A JSON value as escaped text (`null` as a dash).
    static func e(_ v: JSONValue?) -> String {
        switch v {
        case nil, .null?: return "–"
        case .string(let s)?: return escape(s)
        case let v?: return escape(v.serialized)
        }
    }

    /// HTML text and attribute escaping: the five characters that can change what the markup means.
    public static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func duration(_ s: Double) -> String {
        let t = Int(max(0, s))
        if t < 120 { return "\(t) s" }
        if t < 7200 { return "\(t / 60) min" }
        if t < 172_800 { return "\(t / 3600) h" }
        return "\(t / 86_400) d"
    }

    static func bytes(_ b: Double) -> String {
        if b >= 1e9 { return JSONValue.format((b / 1e8).rounded() / 10) + " GB" }
        if b >= 1e6 { return JSONValue.format((b / 1e5).rounded() / 10) + " MB" }
        return JSONValue.format((b / 1e2).rounded() / 10) + " kB"
    }
}
