import HeatbridgeCore

/// Bosch webhook events (cloud-apis.md §1.7). The event types `CONTRACT_STATUS` and `DAILY_AGGREGATE` and the data
/// point keys are documented; the envelope and the other type names are INFERRED (`{"eventType", "gatewayId",
/// "timestamp"/"createdAt", "payload"}`), so the reader takes the spellings seen in Bosch's other models too and the
/// simulator writes the inferred one.
extension BoschWire {
    public enum EventType {
        public static let connectivity = "CONNECTIVITY_STATUS"
        public static let applianceStatus = "APPLIANCE_STATUS"
        public static let contract = "CONTRACT_STATUS"
        public static let dataPoint = "DATA_POINT"
        public static let dailyAggregate = "DAILY_AGGREGATE"
    }

    /// The data points Bosch documents [doc], as keys.
    public enum DataPoint {
        public static let energyConsumptionTotal = "hvac.emon.energyConsumptionTotal"
        public static let energySupplyTotal = "hvac.emon.energySupplyTotal"
        public static let compressorEnergyHeating = "hvac.emon.compressor.energyConsumptionTotal.centralHeating"
        public static let compressorPower = "hvac.emon.compressor.powerCurrent"
        public static let eheaterPower = "hvac.emon.eheater.powerCurrent"
        public static let compressorStatus = "hvac.emon.compressor.operationStatus"
        public static let eheaterStatus = "hvac.emon.eheater.operationStatus"
        public static let compressorSpeed = "hvac.compressor.currentSpeed"
        public static let outdoorTemperature = "hvac.system.outdoorTemperature"
        public static let energyManagementStatus = "hvac.energyManagement.operationStatus"
        public static func cylinderTemperature(_ dhw: String) -> String { "hvac.domesticHotWater.\(dhw).cylinderTemperature" }
        public static func chargeStatus(_ dhw: String) -> String { "hvac.domesticHotWater.\(dhw).chargeStatus" }
        public static func flowTemperature(_ hc: String) -> String { "hvac.heatingCircuit.\(hc).flowTemperature" }
        public static func roomTemperature(_ hc: String) -> String { "hvac.heatingCircuit.\(hc).roomTemperature" }
        public static func cascadePower(_ hs: String) -> String { "hvac.cascade.hs\(hs).emon.compressor.powerCurrent" }
    }

    /// The largest event a box takes (a Bosch event is a few hundred bytes; descriptions in several languages
    /// stay far below this).
    public static let maxEventBytes = 16_384

    /// An event as the simulator sends it (the INFERRED envelope). `payload` is the type's own object.
    public static func event(type: String, gatewayId: String, at: EpochSeconds, id: String, payload: JSONValue) -> JSONValue {
        [
            "eventId": .string(id), "eventType": .string(type), "gatewayId": .string(gatewayId),
            "timestamp": .string(Timestamp.iso8601(at)), "payload": payload,
        ]
    }

    /// A data point event's payload.
    public static func dataPointPayload(key: String, value: JSONValue, unit: String?) -> JSONValue {
        ["key": .string(key), "value": value, "unit": .string(unit)]
    }

    /// The parts of an event envelope, read leniently.
    public struct EventEnvelope: Sendable, Equatable {
        public var type: String
        public var gatewayId: String
        public var at: EpochSeconds
        /// The type's own fields (`payload`, `properties`, `data`, or the envelope itself).
        public var body: [String: JSONValue]
    }

    /// Reads an event's envelope; the message says what is missing.
    public static func envelope(_ j: JSONValue) -> Result<EventEnvelope, PushRejection> {
        guard case .object(let o) = j else { return .failure(PushRejection(.malformed, "an event is a JSON object")) }
        guard let type = (o["eventType"] ?? o["type"])?.stringValue, !type.isEmpty, type.utf8.count <= 64 else {
            return .failure(PushRejection(.invalid, "no eventType"))
        }
        guard let gw = (o["gatewayId"] ?? o["gatewayID"] ?? o["hvacId"])?.stringValue, isGatewayId(gw) else {
            return .failure(PushRejection(.invalid, "no gatewayId, or not a gateway id (9 digits)"))
        }
        let body = (o["payload"] ?? o["properties"] ?? o["data"])?.objectValue ?? o
        guard let at = time(o["timestamp"] ?? o["createdAt"] ?? o["eventTimestamp"] ?? body["timestamp"] ?? body["createdAt"]) else {
            return .failure(PushRejection(.invalid, "no timestamp (an ISO 8601 time or epoch seconds)"))
        }
        return .success(EventEnvelope(type: type.uppercased(), gatewayId: gw, at: at, body: body))
    }

    /// An ISO 8601 time, or epoch seconds (milliseconds when it is that large).
    public static func time(_ v: JSONValue?) -> EpochSeconds? {
        switch v {
        case .string(let s)?: return Timestamp.parse(s)
        case .number(let n)? where n.isFinite && n > 0: return n > 1e11 ? n / 1000 : n
        default: return nil
        }
    }
}
