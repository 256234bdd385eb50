import FoundationEssentials
import HeatbridgeCore

/// Wire types of the Bosch Home Comfort Group Partner API: every path, header, body and enum spelling the
/// adapter and the simulator use, in one place so a correction is one edit.
///
/// Provenance (see shared/docs/cloud-apis.md §1): the paths, the headers, the status codes and the field names
/// `operationMode`, `currentSetPointTemperature`, `manualModeSettings`, `autoModeSettings`, `overridingModes`,
/// `startSetPointTemperature` and `stopSetPointTemperature` are documented [doc]. The JSON *shapes* are not
/// published: every shape marked INFERRED below is our guess and must be checked against the vendor's OAS.
public enum BoschWire {
    public static let apiKeyHeader = "x-api-key"

    /// Gateway ids are 9-digit numeric strings [pub: rest-api/rate-limit/]; the API answers 400 to others.
    public static func isGatewayId(_ s: String) -> Bool { s.utf8.count == 9 && s.utf8.allSatisfy { (0x30...0x39).contains($0) } }
    /// Required on remote-control endpoints (circuits, charge, system/*) since 2024-07-30 [doc].
    public static let userIdHeader = "x-user-id"

    // MARK: service, keys, system [doc for the endpoints; every body INFERRED]

    /// `GET /health` (since 2023-09-01; body unknown). INFERRED `{"status":"UP"}`; anything but `UP`/`OK`
    /// counts as the API reporting trouble.
    public struct Health: Codable, Sendable, Equatable {
        public var status: String
        public init(status: String) { self.status = status }
    }

    /// `POST /api-keys`: a new key valid 6 months [pub: security]. INFERRED `{"keyId":…,"apiKey":…,"expiresAt":…}`.
    public struct NewApiKey: Codable, Sendable, Equatable {
        public var keyId: String?
        public var apiKey: String
        public var expiresAt: String?
        public init(keyId: String?, apiKey: String, expiresAt: String?) {
            self.keyId = keyId
            self.apiKey = apiKey
            self.expiresAt = expiresAt
        }
    }

    /// One entry of the key list (never the key itself). INFERRED.
    public struct StoredApiKey: Codable, Sendable, Equatable {
        public var keyId: String
        public var createdAt: String?
        public var expiresAt: String?
        public init(keyId: String, createdAt: String?, expiresAt: String?) {
            self.keyId = keyId
            self.createdAt = createdAt
            self.expiresAt = expiresAt
        }
    }

    /// At most this many valid keys per partner [pub: security].
    public static let maxValidKeys = 10

    /// `GET/PUT …/system/dateTime` [doc v1.9]. INFERRED: the gateway's local time without a zone,
    /// `{"dateTime":"2026-11-22T10:00:00"}` (the gateway keeps `LocalDateTime`).
    public struct DateTime: Codable, Sendable, Equatable {
        public var dateTime: String
        public init(dateTime: String) { self.dateTime = dateTime }
    }

    /// One entry of `GET …/components` [doc: types GATEWAY, POOLMODULE, CASCADE; `softwareVersion` always,
    /// `serialNumber` optional]. The `id` field is INFERRED.
    public struct Component: Codable, Sendable, Equatable {
        public var id: String?
        public var type: String
        public var softwareVersion: String?
        public var serialNumber: String?
        public init(id: String?, type: String, softwareVersion: String?, serialNumber: String?) {
            self.id = id
            self.type = type
            self.softwareVersion = softwareVersion
            self.serialNumber = serialNumber
        }
    }

    /// `POST /webhooks/simulation` [doc v1.25]: body INFERRED as the event type plus a gateway.
    public struct WebhookSimulation: Codable, Sendable, Equatable {
        public var eventType: String
        public var gatewayId: String?
        public init(eventType: String, gatewayId: String?) {
            self.eventType = eventType
            self.gatewayId = gatewayId
        }
    }

    /// Event types: the two documented strings, the others INFERRED in the same style (cloud-apis.md §1.7).
    public static let webhookEventTypes = ["CONNECTIVITY_STATUS", "APPLIANCE_STATUS", "CONTRACT_STATUS", "DATA_POINT", "DAILY_AGGREGATE"]

    // MARK: heat curve [doc v1.1, v1.9, v1.14, v1.20; field names INFERRED from the gateway's resources]

    /// `GET/PATCH …/heatingCircuits/{id}/heatCurve`. Temperatures °C except the two room terms, which are
    /// Kelvin [doc v1.14]. ISRC circuits (room-controlled) have no curve: `controlType` ISRC and no points.
    public struct HeatCurve: Codable, Sendable, Equatable {
        public var controlType: String?
        public var minFlowTemperature: Double?
        public var maxFlowTemperature: Double?
        public var basepointTemperature: Double?
        public var endpointTemperature: Double?
        public var roomInfluenceTemperature: Double?
        public var roomTemperatureOffset: Double?
        public init(
            controlType: String? = nil, minFlowTemperature: Double? = nil, maxFlowTemperature: Double? = nil,
            basepointTemperature: Double? = nil, endpointTemperature: Double? = nil, roomInfluenceTemperature: Double? = nil,
            roomTemperatureOffset: Double? = nil
        ) {
            self.controlType = controlType
            self.minFlowTemperature = minFlowTemperature
            self.maxFlowTemperature = maxFlowTemperature
            self.basepointTemperature = basepointTemperature
            self.endpointTemperature = endpointTemperature
            self.roomInfluenceTemperature = roomInfluenceTemperature
            self.roomTemperatureOffset = roomTemperatureOffset
        }
    }
    /// `controlType` values (consumer cloud) [analog].
    /// A room-temperature-controlled circuit has no heat curve to edit.
    public static let controlTypeISRC = "ISRC"
    public static let controlTypes = ["WDCOPTIMIZED", "WDCSIMPLIFIED", controlTypeISRC]
    public static let flowRange = 10.0...90.0
    public static let roomInfluenceRange = 0.0...10.0
    public static let roomOffsetRange = -5.0...5.0

    /// `GET …/heatingDistributionType` [doc v1.15]: property `heatingDistributionType` (values INFERRED,
    /// e.g. `FLOOR`, `RADIATOR`).
    public struct HeatingDistribution: Codable, Sendable, Equatable {
        public var heatingDistributionType: String
        public init(heatingDistributionType: String) { self.heatingDistributionType = heatingDistributionType }
    }

    // MARK: system [doc v1.1, v1.8: paths; bodies INFERRED from the gateway's local resources]

    /// `GET/PATCH …/system/silentMode` (heat pumps). INFERRED: `{"silentMode": "ON"|"OFF"|"AUTO"}`.
    public struct SilentMode: Codable, Sendable, Equatable {
        public var silentMode: String
        public init(silentMode: String) { self.silentMode = silentMode }
    }
    public static let silentModeOn = "ON", silentModeOff = "OFF", silentModeAuto = "AUTO"
    public static let silentModes = [silentModeOn, silentModeOff, silentModeAuto]

    /// One holiday mode (`GET/POST …/system/holidayModes`). INFERRED from the gateway's `hm1`…`hm5` slots:
    /// start and end date, the circuits it applies to, and what heating and hot water do meanwhile.
    public struct HolidayMode: Codable, Sendable, Equatable {
        public var id: String?
        public var startDate: String
        public var endDate: String
        public var assignedTo: [String]
        public var hcMode: String?
        public var dhwMode: String?
        public init(id: String? = nil, startDate: String, endDate: String, assignedTo: [String], hcMode: String? = nil, dhwMode: String? = nil) {
            self.id = id
            self.startDate = startDate
            self.endDate = endDate
            self.assignedTo = assignedTo
            self.hcMode = hcMode
            self.dhwMode = dhwMode
        }
    }
    public static let holidayHcModes = ["AUTO_SAT", "FIX_TEMP", "OFF", "ECO"]
    public static let holidayDhwModes = ["AUTO_SAT", "OFF", "TD_OFF"]
    /// The gateway has five holiday slots.
    public static let maxHolidayModes = 5

    // MARK: contracts and keys [doc: contracts page, v1.17, v1.21, v1.31, v1.32]

    /// One contract (`GET /contracts`, `GET /contracts/{gatewayId}`). Field names [doc]; the status values
    /// other than ACTIVE are INFERRED (PENDING, REJECTED, REVOKED, CLOSED).
    public struct Contract: Codable, Sendable, Equatable {
        public var gatewayId: String
        public var status: String
        public var statusDate: String?
        public var partnerUserId: String?
        public var userId: String?
        public var addressLines: [String]?
        public init(
            gatewayId: String, status: String, statusDate: String? = nil, partnerUserId: String? = nil, userId: String? = nil,
            addressLines: [String]? = nil
        ) {
            self.gatewayId = gatewayId
            self.status = status
            self.statusDate = statusDate
            self.partnerUserId = partnerUserId
            self.userId = userId
            self.addressLines = addressLines
        }
    }

    /// `PATCH /contracts/{gatewayId}` body. INFERRED field name; the actions are [doc v1.32].
    public struct ContractAction: Codable, Sendable, Equatable {
        public var action: String
        public init(action: String) { self.action = action }
    }
    public enum ContractState {
        public static let pending = "PENDING", active = "ACTIVE", rejected = "REJECTED", revoked = "REVOKED", closed = "CLOSED"
        /// A gateway whose contract ended in one of these is no longer listed by `/hvacs`.
        public static let ended: Set<String> = [rejected, revoked, closed]
    }
    public enum ContractVerb {
        public static let accept = "ACCEPT", reject = "REJECT", revoke = "REVOKE"
    }
    public static let contractActions = [ContractVerb.accept, ContractVerb.reject, ContractVerb.revoke]
    public static let contractStatuses = [
        ContractState.pending, ContractState.active, ContractState.rejected, ContractState.revoked, ContractState.closed,
    ]
    /// `GET /hvacs/{id}/status` [doc].
    public static let gatewayOnline = "ONLINE", gatewayOffline = "OFFLINE"
    /// `GET /health` statuses that mean the service is up (INFERRED, see `health` above).
    public static let healthUp = "UP", healthOK = "OK"

    /// `GET /api-keys/me`: at least the partner's `companyId` [doc].
    public struct KeyIdentity: Codable, Sendable, Equatable {
        public var companyId: String
        public init(companyId: String) { self.companyId = companyId }
    }

    /// The Gateway Management Portal host per brand, for the partner redirect link [doc].
    public static let portalHosts = [
        "bosch": "devices.bosch-homecom.com", "buderus": "devices.buderus-connect.de",
        "ivt": "devices.ivt-connect.com",
    ]

    /// The expiry date keys embed (UTC) [pub]. INFERRED position: the last eight characters, `YYYYMMDD`
    /// (`xHCSAPI-…-20270522`); nil when the key does not end that way.
    public static func keyExpiry(_ key: String) -> EpochSeconds? {
        let tail = Array(key.utf8.suffix(8))
        guard tail.count == 8, tail.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        let digits = tail.map { Int64($0 - 0x30) }
        let y = digits[0...3].reduce(0) { $0 * 10 + $1 }
        let m = digits[4] * 10 + digits[5]
        let d = digits[6] * 10 + digits[7]
        guard (2000...2200).contains(y), (1...12).contains(m), (1...31).contains(d) else { return nil }
        return EpochSeconds(Timestamp.daysFromCivil(y, m, d) * 86_400)
    }

    // MARK: bodies

    /// One entry of `GET /hvacs`. INFERRED: an array of objects; only `gatewayId` is certain to exist.
    public struct Gateway: Codable, Sendable, Equatable {
        public var gatewayId: String
        public var deviceType: String?
        public var brand: String?
        public init(gatewayId: String, deviceType: String? = nil, brand: String? = nil) {
            self.gatewayId = gatewayId
            self.deviceType = deviceType
            self.brand = brand
        }
    }

    /// `GET /hvacs/{id}/status`. Values `ONLINE`/`OFFLINE` [doc]; the field name is INFERRED.
    public struct GatewayStatus: Codable, Sendable, Equatable {
        public var status: String
        public init(status: String) { self.status = status }
    }

    /// One entry of a circuit list (`GET …/heatingCircuits`, `GET …/dhwCircuits`). INFERRED: `[{"id":"1"}]`.
    public struct CircuitRef: Codable, Sendable, Equatable {
        public var id: String
        public init(id: String) { self.id = id }
    }

    /// `GET …/heatingCircuits/{id}`. Field names [doc]; nesting and enum spellings INFERRED
    /// (`OFF`/`AUTO`/`MANUAL`, upper case like the API's other enums).
    public struct HeatingCircuit: Codable, Sendable, Equatable {
        public var id: String
        public var operationMode: String?
        public var currentSetPointTemperature: Double?
        public var roomTemperature: Double?
        public var manualModeSettings: ManualModeSettings?
        public var autoModeSettings: AutoModeSettings?
        public var overridingModes: [OverridingMode]?

        public init(
            id: String, operationMode: String?, currentSetPointTemperature: Double?, roomTemperature: Double?,
            manualModeSettings: ManualModeSettings?, autoModeSettings: AutoModeSettings?, overridingModes: [OverridingMode]?
        ) {
            self.id = id
            self.operationMode = operationMode
            self.currentSetPointTemperature = currentSetPointTemperature
            self.roomTemperature = roomTemperature
            self.manualModeSettings = manualModeSettings
            self.autoModeSettings = autoModeSettings
            self.overridingModes = overridingModes
        }
    }

    /// INFERRED shape.
    public struct ManualModeSettings: Codable, Sendable, Equatable {
        public var setPointTemperature: Double?
        public init(setPointTemperature: Double?) { self.setPointTemperature = setPointTemperature }
    }

    /// Selected time program and its temperature levels [doc 2024-09-26]; shape INFERRED.
    public struct AutoModeSettings: Codable, Sendable, Equatable {
        public var timeProgramId: String?
        public var temperatureLevels: [String: Double]?
        public init(timeProgramId: String?, temperatureLevels: [String: Double]?) {
            self.timeProgramId = timeProgramId
            self.temperatureLevels = temperatureLevels
        }
    }

    /// State of one overriding mode (boost, away, holiday, summer/winter) [doc]; shape INFERRED.
    public struct OverridingMode: Codable, Sendable, Equatable {
        public var mode: String
        public var active: Bool
        public init(mode: String, active: Bool) {
            self.mode = mode
            self.active = active
        }
    }

    /// `GET …/dhwCircuits/{id}`. Per-mode settings objects with start/stop setpoints [doc];
    /// key names `ecoModeSettings`/`lowModeSettings`/`highModeSettings` and `actualTemperature` INFERRED.
    public struct DhwCircuit: Codable, Sendable, Equatable {
        public var id: String
        public var operationMode: String?
        public var actualTemperature: Double?
        public var ecoModeSettings: DhwModeSettings?
        public var lowModeSettings: DhwModeSettings?
        public var highModeSettings: DhwModeSettings?
        /// `autoModeSettings.operationMode` [doc v1.7]; its `timeProgramId` is INFERRED like the heating one's.
        public var autoModeSettings: DhwAutoModeSettings?

        public init(
            id: String, operationMode: String?, actualTemperature: Double?, ecoModeSettings: DhwModeSettings?,
            lowModeSettings: DhwModeSettings?, highModeSettings: DhwModeSettings?, autoModeSettings: DhwAutoModeSettings? = nil
        ) {
            self.id = id
            self.operationMode = operationMode
            self.actualTemperature = actualTemperature
            self.ecoModeSettings = ecoModeSettings
            self.lowModeSettings = lowModeSettings
            self.highModeSettings = highModeSettings
            self.autoModeSettings = autoModeSettings
        }
    }

    public struct DhwAutoModeSettings: Codable, Sendable, Equatable {
        public var operationMode: String?
        public var timeProgramId: String?
        public init(operationMode: String?, timeProgramId: String?) {
            self.operationMode = operationMode
            self.timeProgramId = timeProgramId
        }
    }

    /// DHW program id when the circuit does not name one (INFERRED, like the heating programs' `A`).
    public static let defaultDhwProgram = "A"
    /// Levels a DHW program switches between (INFERRED: the three heat-pump DHW levels).
    public static let dhwProgramLevels = ["eco", "low", "high"]

    public struct DhwModeSettings: Codable, Sendable, Equatable {
        public var startSetPointTemperature: Double?
        public var stopSetPointTemperature: Double?
        public init(startSetPointTemperature: Double?, stopSetPointTemperature: Double?) {
            self.startSetPointTemperature = startSetPointTemperature
            self.stopSetPointTemperature = stopSetPointTemperature
        }
    }

    /// `GET`/`PATCH …/dhwCircuits/{id}/charge` (model `DhwCircuitsCharge` [doc]). INFERRED from the gateway's
    /// resources `charge`, `chargeDuration`, `chargeRemainingTime` (minutes): `{"chargeStatus":"START"|"STOP", …}`.
    public struct DhwCharge: Codable, Sendable, Equatable {
        public var chargeStatus: String
        public var chargeDuration: Int?
        public var chargeRemainingTime: Int?
        public init(chargeStatus: String, chargeDuration: Int? = nil, chargeRemainingTime: Int? = nil) {
            self.chargeStatus = chargeStatus
            self.chargeDuration = chargeDuration
            self.chargeRemainingTime = chargeRemainingTime
        }
    }

    /// `PATCH …/heatingCircuits/{id}`: only the members to change [doc: operation mode, manual setpoint,
    /// auto-mode program & levels]; member shapes INFERRED like the GET body.
    public struct HeatingCircuitPatch: Codable, Sendable, Equatable {
        public var operationMode: String?
        public var manualModeSettings: ManualModeSettings?
        /// Program selection and/or level temperatures; only the members sent change.
        public var autoModeSettings: AutoModeSettings?
        public init(operationMode: String? = nil, manualModeSettings: ManualModeSettings? = nil, autoModeSettings: AutoModeSettings? = nil) {
            self.operationMode = operationMode
            self.manualModeSettings = manualModeSettings
            self.autoModeSettings = autoModeSettings
        }
    }

    /// Heating program ids a circuit can select (analog: the gateway's `activeSwitchProgram` A/B; the Partner
    /// API's `timeProgramId` values are INFERRED to match).
    public static let heatingProgramIds = ["A", "B"]

    /// `PATCH …/dhwCircuits/{id}` [doc v1.12]: operation mode and/or one level's start/stop setpoints.
    public struct DhwCircuitPatch: Codable, Sendable, Equatable {
        public var operationMode: String?
        public var ecoModeSettings: DhwModeSettings?
        public var lowModeSettings: DhwModeSettings?
        public var highModeSettings: DhwModeSettings?
        public init(
            operationMode: String? = nil, ecoModeSettings: DhwModeSettings? = nil, lowModeSettings: DhwModeSettings? = nil,
            highModeSettings: DhwModeSettings? = nil
        ) {
            self.operationMode = operationMode
            self.ecoModeSettings = ecoModeSettings
            self.lowModeSettings = lowModeSettings
            self.highModeSettings = highModeSettings
        }
    }

    /// Heating circuit operation modes (INFERRED upper-case spelling of the gateway's off/auto/manual).
    public static let heatingModeOff = "OFF", heatingModeAuto = "AUTO", heatingModeManual = "MANUAL"
    public static let heatingModes = [heatingModeOff, heatingModeAuto, heatingModeManual]
    /// DHW operation modes (INFERRED from the gateway's Off/eco/low/high/ownprogram; `AUTO` = own program).
    public static let dhwModeOff = "OFF", dhwModeEco = "ECO", dhwModeLow = "LOW", dhwModeHigh = "HIGH", dhwModeAuto = "AUTO"
    public static let dhwModes = [dhwModeOff, dhwModeEco, dhwModeLow, dhwModeHigh, dhwModeAuto]
    /// The levels a DHW program switches between (the modes other than off and own program).
    public static let dhwLevelModes = [dhwModeEco, dhwModeLow, dhwModeHigh]
    /// Room setpoint range of the controllers (analog: km200 minValue/maxValue 5…30 °C), 0.5 °C steps.
    public static let roomSetpointRange = 5.0...30.0
    /// DHW start/stop setpoint range (INFERRED: consumer integrations clamp levels to 30…53 °C; heat pumps
    /// with an electric heater reach 65 °C, the upper bound used here).
    public static let dhwSetpointRange = 30.0...65.0

    /// `GET …/heatingCircuits/{id}/timePrograms/{tp}` (`TimeProgram`/`SwitchPoint` exist in the OAS [doc]).
    /// Shape INFERRED from the gateway's switch programs: `{"switchPoints":[{"dayOfWeek":"Mo","time":360,
    /// "setpoint":"comfort"}]}`, `time` in minutes after midnight, `setpoint` a level of `autoModeSettings`.
    public struct TimeProgram: Codable, Sendable, Equatable {
        public var id: String?
        public var switchPoints: [SwitchPoint]
        public init(id: String?, switchPoints: [SwitchPoint]) {
            self.id = id
            self.switchPoints = switchPoints
        }
    }

    public struct SwitchPoint: Codable, Sendable, Equatable {
        public var dayOfWeek: String
        public var time: Int
        public var setpoint: String
        public init(dayOfWeek: String, time: Int, setpoint: String) {
            self.dayOfWeek = dayOfWeek
            self.time = time
            self.setpoint = setpoint
        }
    }

    /// Day names of switch points, Monday first (INFERRED, as the gateway spells them).
    public static let days = ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]

    public static let chargeStart = "START"
    public static let chargeStop = "STOP"

    /// Error body. `{"message":"Unauthorized"}` is documented for 401 [doc v1.2]; the rest INFERRED
    /// (AWS API Gateway style, plus a `requestId` for support cases).
    /// Response headers that may carry the request id (lowercase). INFERRED: the name is not published.
    public static let requestIdHeaders = ["x-request-id", "x-amzn-requestid", "x-amz-apigw-id"]

    public struct ErrorBody: Codable, Sendable, Equatable {
        public var message: String?
        public var requestId: String?
        public init(message: String?, requestId: String? = nil) {
            self.message = message
            self.requestId = requestId
        }
    }

    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? Array(encoder.encode(value))) ?? Array("{}".utf8)
    }

    public static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> T? {
        try? JSONDecoder().decode(type, from: Data(bytes))
    }
}
