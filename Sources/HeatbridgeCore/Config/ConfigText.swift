/// How config values are repeated in messages. A config is written by hand, and sometimes a secret lands in the
/// wrong place (a key pasted into `poll_interval_s`, a password in a URL): messages must help without
/// repeating it.
public enum ConfigText {
    /// Longest value quoted back as it is; longer ones are described, not shown.
    public static let maxEchoedCharacters = 8

    /// `"fast"` for a short value; "a 40-character value (not shown)" for a long one, which could be a secret.
    public static func echo(_ value: String) -> String {
        guard value.count <= maxEchoedCharacters, !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            return "a \(value.count)-character value (not shown: it could be a secret)"
        }
        return "\"\(value)\""
    }

    /// `url` with the password of its user part and every query value replaced by `***`:
    /// `mqtt://u:***@host:1883`, `https://h/api?key=***`.
    public static func redactedURL(_ url: String) -> String {
        var rest = Substring(url)
        var out = ""
        if let afterScheme = afterSchemeIndex(url) {
            out += url[..<afterScheme]
            rest = url[afterScheme...]
        }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        if let at = authority.lastIndex(of: "@") {
            let user = authority[..<at]
            out += (user.firstIndex(of: ":").map { String(user[..<$0]) + ":***" } ?? String(user)) + "@"
            out += authority[authority.index(after: at)...]
        } else {
            out += authority
        }
        rest = rest[authorityEnd...]
        guard let q = rest.firstIndex(of: "?") else { return out + rest }
        out += rest[...q]
        let query = rest[rest.index(after: q)...]
        let fragment = query.firstIndex(of: "#")
        let pairs = (fragment.map { query[..<$0] } ?? query).split(separator: "&", omittingEmptySubsequences: false)
        var redacted: [String] = []
        for pair in pairs {
            if let eq = pair.firstIndex(of: "=") { redacted.append(String(pair[...eq]) + "***") } else { redacted.append(String(pair)) }
        }
        out += redacted.joined(separator: "&")
        if let fragment { out += query[fragment...] }
        return out
    }

    /// Whether `url` carries a user or password (`scheme://user:pass@host`).
    public static func hasUserInfo(_ url: String) -> Bool {
        guard let afterScheme = afterSchemeIndex(url) else { return false }
        let rest = url[afterScheme...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        return rest[..<authorityEnd].contains("@")
    }

    /// The index just past `scheme://`, if the text starts with one.
    static func afterSchemeIndex(_ url: String) -> String.Index? {
        guard let colon = url.firstIndex(of: ":"), url[..<colon].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }),
            url[colon...].hasPrefix("://")
        else { return nil }
        return url.index(colon, offsetBy: 3)
    }
}
