import HeatbridgeCore

/// Wire facts of the HomeSmartlink 3rd Party API (doc v0.3.3): paths, envelope, DTO field names and enums,
/// in one place so a correction is one edit. The simulator builds its answers from the same names.
///
/// Provenance (shared/docs/cloud-apis.md §2): paths, methods, request bodies, the `authorisation` envelope,
/// the `reponse` spelling of two endpoints and every DTO field are documented [doc]. INFERRED below: the
/// error body, `endTime` 1440 for "until midnight", and that a derogation's start trigger is sent to the home
/// gateway when the derogation is created (the gateway keeps the window), so its report fills in right away.
public enum HSLWire {
    public enum Path {
        public static let config = "/partners/1/config"
        public static let invitations = "/partners/1/invitations"
        public static let derogations = "/partners/1/derogations"
        public static let report = "/partners/1/report"
        public static let users = "/partners/1/users"
        public static func users(page: Int, size: Int) -> String { "\(users)?\(F.page)=\(page)&\(F.size)=\(size)" }
        /// POST starts a diagnosis, PUT fetches its result.
        public static let request = "/partners/1/request"
    }

    /// DeviceDTO / GatewayResponseDTO / RequestReportDTO field names [doc].
    public enum F {
        public static let header = "header"
        public static let roomId = "roomId"
        public static let roomName = "roomName"
        public static let softwareVersion = "softwareVersion"
        public static let category = "category"
        public static let online = "online"
        public static let mode = "mode"
        public static let setpoint = "sp"
        /// The measured (ambient) temperature: a **string** on the wire.
        public static let measured = "pv"
        public static let lastUpdate = "lastUpdate"
        public static let weekSchedule = "weekSchedule"
        /// A week schedule's comfort ranges (minutes of the day) [doc].
        public static let start = "start"
        public static let end = "end"

        /// Request bodies and their answers [doc].
        public static let homeId = "homeId"
        public static let email = "email"
        public static let derogations = "derogations"
        public static let startTime = "startTime"
        public static let endTime = "endTime"
        public static let delta = "delta"
        public static let date = "date"
        public static let startTrigger = "startTrigger"
        public static let endTrigger = "endTrigger"
        public static let trigger = "trigger"
        public static let summary = "summary"
        public static let requested = "requested"
        public static let sent = "sent"
        public static let received = "received"
        public static let first = "first"
        public static let last = "last"
        public static let details = "details"
        public static let acknowledge = "acknowledge"
        public static let sendAt = "sendAt"
        public static let status = "status"
        public static let messageId = "messageId"
        public static let createdAt = "_created_at"
        public static let deviceStatus = "deviceStatus"
        public static let page = "page"
        public static let size = "size"
        /// The home's gateway (top level of GET DEVICES) [doc].
        public static let gateway = "gateway"
        public static let token = "token"
        public static let version = "version"
        public static let lastPing = "lastPing"
        public static let installationDate = "installationDate"
        /// An invitation (GET INVITATIONS) [doc].
        public static let invitationId = "_id"
        public static let creationDate = "creationDate"
        public static let role = "role"
        public static let city = "city"
        public static let gatewayEnabled = "gatewayEnabled"
        public static let hasGateway = "hasGateway"
        public static let rooms = "rooms"
        public static let name = "name"
        public static let roomNumber = "roomNumber"
        public static let deviceCount = "deviceCount"
        public static let accessories = "accessories"
        /// A user (GET USERS) [doc].
        public static let firstName = "firstName"
        public static let lastName = "lastName"
        public static let zipCode = "zipCode"
        public static let prmId = "prmId"
        public static let consentDate = "consentDate"
    }

    /// A diagnosis request's `status` [doc].
    public static let requestAccepted = "OK"
    public static let requestRefused = "NOK"
    /// The device category of the home's gateway [doc].
    public static let gatewayCategory = "Gateway"

    /// Heater modes [doc]; `Prog` follows the week schedule.
    public static let modeProgram = "Prog"
    public static let modes = ["Stop", "Antifreeze", "Manual", modeProgram]
    /// Device categories [doc, "TowelDryier" sic].
    public static let categoryHeater = "Heater"
    public static let categoryTowelDryer = "TowelDryier"
    public static let categories = ["None", categoryHeater, categoryTowelDryer, "Fireplace", gatewayCategory, "Module", "Furnace"]

    /// Derogation limits [doc]: delta in whole °C, times on the 5-minute grid.
    public static let deltaRange = -5...5
    public static let gridMinutes = 5
    /// `endTime` for a window that runs until midnight. INFERRED: the doc only says ≥ 0 and a multiple of 5.
    public static let midnight = 1440

    /// The result of a call: the envelope's `response` (or `reponse`) plus the whole object for top-level
    /// extras (`gateway`, `startTrigger`, `endTrigger`).
    public struct Envelope: Sendable {
        public var response: JSONValue
        public var root: JSONValue
    }

    public enum EnvelopeError: Error, Sendable, Equatable {
        case notJSON
        case missingAuthorisation
        /// The answer names another client: never use it.
        case otherClient(String)
    }

    /// Checks the `authorisation` block (type BASIC, our client id) and picks `response` or `reponse`.
    public static func open(_ body: [UInt8], clientId: String) -> Result<Envelope, EnvelopeError> {
        guard let root = try? JSONValue.parse(body), root.objectValue != nil else { return .failure(.notJSON) }
        guard let auth = root["authorisation"], let type = auth["type"]?.stringValue, let client = auth["client"]?.stringValue,
            type.uppercased() == "BASIC"
        else { return .failure(.missingAuthorisation) }
        guard client == clientId else { return .failure(.otherClient(client)) }
        return .success(Envelope(response: root["response"] ?? root["reponse"] ?? .null, root: root))
    }

    /// A success envelope (used by the simulator). `misspelled` writes `reponse`, as the doc does for
    /// GET DEVICES and GET INVITATIONS.
    public static func envelope(client: String, _ response: JSONValue, misspelled: Bool = false, extra: [String: JSONValue] = [:]) -> [UInt8] {
        var o = extra
        o["authorisation"] = ["type": "BASIC", "client": .string(client)]
        o[misspelled ? "reponse" : "response"] = response
        return JSONValue.object(o).bytes
    }

    /// The error body. INFERRED: not documented; `{"error": "…"}` is what the simulator sends and what the
    /// adapter reads (any other body is ignored).
    public static func errorBody(_ message: String) -> [UInt8] { JSONValue.object(["error": .string(message)]).bytes }
    public static func errorMessage(_ body: [UInt8]) -> String? {
        guard let j = try? JSONValue.parse(body) else { return nil }
        return (j["error"]?.stringValue ?? j["message"]?.stringValue).map { String($0.prefix(200)) }
    }

    /// `pv` as a number: the doc types it as a string ("20.5"); a number is accepted too.
    public static func number(_ v: JSONValue?) -> Double? {
        if let d = v?.doubleValue { return d }
        if let s = v?.stringValue { return Double(s.replacingCommaWithDot()) }
        return nil
    }
}

extension String {
    fileprivate func replacingCommaWithDot() -> String { String(map { $0 == "," ? "." : $0 }) }
}
