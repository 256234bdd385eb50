import HeatbridgeCore

/// Wire facts of the Podero Partner API v2.0: paths, field names, enums and error bodies, in one place so a
/// correction is one edit. The simulator builds its answers from the same names.
///
/// Provenance (shared/docs/cloud-apis.md §3): paths, the token exchange, the heat-pump field names and the
/// onboarding enums are published [pub]. INFERRED below: the error body (`{"detail": …}` as Django Ninja emits
/// it), the user list shape (a JSON array), and which status a conflicting action gets besides the EV boost's 409.
public enum PoderoWire {
    /// Every API path starts with this under the host; the token endpoint does not.
    public static let apiPrefix = "/api/partners/v2.0"
    /// The OAuth2 client-credentials endpoint, relative to the host root (trailing slash is part of it) [pub].
    public static let tokenPath = "/oauth2/token/"

    /// Every API endpoint heatbridge uses, as a value: the adapter renders it (`path`), the simulator parses it.
    public enum Route: Equatable, Sendable {
        case users(org: String)
        case heatPumps(org: String, user: String)
        case heatPump(org: String, user: String, heatPump: String)
        case statistics(org: String, user: String, heatPump: String)
        case onboarding
        case onboardingSession(String)

        static let org = "org", usersSegment = "users", heatPumpsSegment = "heat-pumps", statisticsSegment = "statistics"
        static let onboardingSegment = "device-onboarding"

        public var segments: [String] {
            switch self {
            case .users(let o): return [Self.org, o, Self.usersSegment]
            case .heatPumps(let o, let u): return [Self.org, o, Self.usersSegment, u, Self.heatPumpsSegment]
            case .heatPump(let o, let u, let h): return [Self.org, o, Self.usersSegment, u, Self.heatPumpsSegment, h]
            case .statistics(let o, let u, let h): return [Self.org, o, Self.usersSegment, u, Self.heatPumpsSegment, h, Self.statisticsSegment]
            case .onboarding: return [Self.onboardingSegment]
            case .onboardingSession(let id): return [Self.onboardingSegment, id]
            }
        }

        /// The path below `apiPrefix`, e.g. `/org/o1/users`.
        public var path: String { "/" + segments.joined(separator: "/") }

        /// The route a path below `apiPrefix` names (query stripped by the caller); nil for any other path.
        public init?(path: String) {
            let p = path.split(separator: "/").map(String.init)
            if p.first == Self.onboardingSegment {
                switch p.count {
                case 1: self = .onboarding
                case 2: self = .onboardingSession(p[1])
                default: return nil
                }
                return
            }
            guard p.count >= 3, p[0] == Self.org, p[2] == Self.usersSegment else { return nil }
            switch p.count {
            case 3: self = .users(org: p[1])
            case 5 where p[4] == Self.heatPumpsSegment: self = .heatPumps(org: p[1], user: p[3])
            case 6 where p[4] == Self.heatPumpsSegment: self = .heatPump(org: p[1], user: p[3], heatPump: p[5])
            case 7 where p[4] == Self.heatPumpsSegment && p[6] == Self.statisticsSegment:
                self = .statistics(org: p[1], user: p[3], heatPump: p[5])
            default: return nil
            }
        }

        /// The organisation a route belongs to; nil for the onboarding endpoints.
        public var org: String? { segments.first == Self.org ? segments[1] : nil }
    }

    public enum Path {
        public static func users(_ org: String) -> String { Route.users(org: org).path }
        public static func heatPumps(_ org: String, _ user: String) -> String { Route.heatPumps(org: org, user: user).path }
        public static func heatPump(_ org: String, _ user: String, _ hp: String) -> String { Route.heatPump(org: org, user: user, heatPump: hp).path }
        public static func statistics(_ org: String, _ user: String, _ hp: String) -> String {
            Route.statistics(org: org, user: user, heatPump: hp).path
        }
        public static let onboarding = Route.onboarding.path
        public static func onboardingSession(_ id: String) -> String { Route.onboardingSession(id).path }
    }

    /// The OAuth2 client-credentials exchange [pub: authentication].
    public enum Token {
        public static let grantType = "grant_type"
        public static let clientCredentials = "client_credentials"
        public static let accessToken = "access_token"
        public static let expiresIn = "expires_in"
        public static let tokenType = "token_type"
        public static let error = "error"
        public static let invalidClient = "invalid_client"
        public static let unsupportedGrant = "unsupported_grant_type"
    }

    /// Heat-pump statistics: the query and the answer's fields [pub: api-reference/statistics].
    public enum Statistics {
        public static let resolution = "resolution", keywords = "keywords"
        public static let data = "data", metadata = "metadata", period = "period"
        public static let startPeriod = "start_period", endPeriod = "end_period"
        public static let savings = "savings", consumption = "consumption", total = "total", percentage = "percentage"
        public static let heatPump = "heat_pump", estimatedConsumption = "estimated_consumption_wh"

        /// The query string of a statistics request.
        public static func query(resolutions: [String], keywords: [String]) -> String {
            "?\(resolution)=\(resolutions.joined(separator: ","))&\(Self.keywords)=\(keywords.joined(separator: ","))"
        }
    }

    /// Device-onboarding session fields [pub: api-reference/device-onboarding].
    public enum Onboarding {
        public static let userId = "user_id"
        public static let language = "language"
        public static let priceZone = "price_zone_default"
        public static let successURL = "success_url"
        public static let cancelURL = "cancel_url"
        public static let authenticationURL = "authentication_url"
        public static let expirationDate = "expiration_date"
        public static let required = [userId, language, priceZone, successURL, cancelURL]
    }

    /// The token endpoint for an API base URL: `https://app.podero.com/api/partners/v2.0` →
    /// `https://app.podero.com/oauth2/token/` (whatever precedes `/api/partners/…` is kept, so a simulator
    /// mounted under `/podero` works the same way).
    public static func tokenURL(forBase base: String) -> String {
        let chars = Array(base)
        let needle = Array("/api/partners/")
        if chars.count >= needle.count {
            for i in 0...(chars.count - needle.count) where Array(chars[i..<(i + needle.count)]) == needle {
                return String(chars[..<i]) + tokenPath
            }
        }
        return (base.hasSuffix("/") ? String(base.dropLast()) : base) + tokenPath
    }

    // MARK: heat-pump fields [pub: api-reference/user-heat-pumps, reference/heat-pumps/state and attributes]

    /// Heat-pump object field names.
    /// `connection_status` / `lifecycle_state` values [doc: ok|warning|error|unknown; lifecycle INFERRED beyond these].
    public enum Status {
        public static let ok = "ok", warning = "warning", error = "error", authenticated = "authenticated"
    }

    public enum F {
        public static let id = "id"
        public static let connectionStatus = "connection_status"
        public static let monitoringStatus = "monitoring_status"
        public static let steeringStatus = "steering_status"
        public static let deviceModel = "device_model"
        public static let lifecycleState = "lifecycle_state"
        public static let lifecycleError = "lifecycle_error"
        public static let actionNeeded = "action_needed"
        public static let actions = "actions"
        public static let deletedAt = "deleted_at"
        // users
        public static let email = "email", role = "role"
        // inside `device_model`
        public static let manufacturer = "manufacturer", model = "model", year = "year", deviceType = "device_type"
        /// Inside `device_type`.
        public static let shortName = "short_name", longName = "long_name"
        // inside one of `actions`
        public static let actionCode = "code", resolutionLink = "resolution_link"
        public static let stateUpdatedAt = "current_state_last_updated_at"
        // state (read-only, refreshed by Podero every 5–15 min)
        public static let power = "current_power_consumption_w"
        public static let mode = "current_mode"
        public static let outdoor = "outdoor_temperature"
        public static let indoor = "indoor_actual_temperature"
        public static let indoorTarget = "indoor_target_temperature"
        public static let inlet = "inlet_temperature"
        public static let outlet = "outlet_temperature"
        public static let dhw = "dhw_temperature"
        /// Older doc version's name for `dhw_temperature`.
        public static let dhwLegacy = "dhw_actual_temperature"
        // preferences (partial PUT)
        public static let optimizationActive = "is_smart_optimization_active"
        public static let optimizationLevel = "optimization_level"
        public static let optimizationScore = "optimization_score"
        public static let comfortMin = "minimum_temperature_limit"
        public static let comfortMax = "maximum_temperature_limit"
        public static let heatingPolicy = "is_heating_policy_enabled"
        public static let dhwStandard = "dhw_standard_temperature"
        public static let dhwMinimum = "minimum_dhw_temperature_limit"
        public static let awayEnabled = "is_away_mode_enabled"
        public static let awayStart = "away_mode_start"
        public static let awayEnd = "away_mode_end"
        public static let awayMinimum = "away_mode_minimum_temperature_limit"
        public static let awayMinimumDhw = "away_mode_minimum_dhw_temperature_limit"
        public static let pauseActive = "is_pause_power_active"
        public static let pauseUntil = "pause_power_until"
    }

    /// `optimization_level` values, in the API's spelling [pub].
    public static let optimizationLevels = ["Low", "Mid", "Max"]
    /// `current_mode` values [pub].
    public static let modes = ["min", "low", "mid", "max"]

    // MARK: onboarding [doc; pub: create-a-new-device-onboarding-session]

    /// `language` enum of the onboarding session (the guide's "fr" is not in the OAS enum).
    public static let languages = ["sv", "de", "en", "hu", "it", "et", "pl", "ro"]
    /// `price_zone_default` enum (the guides' "DE" is `DE_LU` in the OAS).
    public static let priceZones = [
        "AT", "AT_HOURLY", "BE", "CH", "EE", "DE_LU", "HU", "IT_CNOR", "IT_CSUD", "IT_NORD", "IT_PUN",
        "IT_SARD", "IT_SICI", "IT_SUD", "PT", "RO", "SE_1", "SE_2", "SE_3", "SE_4", "UK",
    ]
    /// Statistics `resolution` values [pub].
    public static let resolutions = ["1DAY", "1WEEK", "1MONTH", "1QUARTER", "1YEAR"]
    /// The Connect UI page that skips the device-type choice and goes straight to heat pumps [doc].
    public static let heatPumpConnectPath = "/heat-pumps"

    // MARK: errors

    /// The human part of an error body. INFERRED: `{"detail": "text"}`, or for 422 the validation list
    /// `{"detail": [{"loc": ["body", "field"], "msg": "…", "type": "…"}]}`.
    public static func errorDetail(_ body: [UInt8]) -> String? {
        guard let j = try? JSONValue.parse(body), let detail = j["detail"] else { return nil }
        if let s = detail.stringValue { return String(s.prefix(300)) }
        if let items = detail.arrayValue {
            let parts = items.compactMap { item -> String? in
                guard let msg = item["msg"]?.stringValue else { return nil }
                let field = item["loc"]?.arrayValue?.compactMap(\.stringValue).filter { $0 != "body" }.joined(separator: ".") ?? ""
                return field.isEmpty ? msg : "\(field): \(msg)"
            }
            return parts.isEmpty ? nil : String(parts.joined(separator: "; ").prefix(300))
        }
        return nil
    }

    /// An error body in the vendor's style (used by the simulator).
    public static func errorBody(_ detail: String) -> [UInt8] { JSONValue.object(["detail": .string(detail)]).bytes }

    /// A 422 body in the vendor's style for one field (used by the simulator).
    public static func validationBody(field: String, _ msg: String) -> [UInt8] {
        JSONValue.object(["detail": [["loc": ["body", .string(field)], "msg": .string(msg), "type": "value_error"]]]).bytes
    }
}
