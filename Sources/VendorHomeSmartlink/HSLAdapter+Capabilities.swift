import HeatbridgeCore

/// HomeSmartlink's capabilities, one handler each: a room takes derogations (alone or in a group, with delivery
/// progress), the home's `system` node a diagnosis. The one place they are listed.
extension HSLAdapter {
    typealias Handler = CapabilityHandler<HSLAdapter>

    static let room = CapabilityTable<HSLAdapter>([
        // Cannot be read back (a second one would be sent as another derogation): one that may have reached the
        // cloud before the daemon died ends `IN_DOUBT` (`resendWhenUnconfirmed: false`).
        Handler(
            "derogation",
            validate: { i throws(CommandRejection) in
                try DerogationRequest.validate(i.body, now: i.now ?? HSLModule.referenceDay, localTime: i.localTime ?? FixedOffsetTime(offsetS: 0))
            }, facts: { p in CommandFacts(offsetDelta: p["delta"]?.intValue, offsetMinutes: derogationMinutes(p)) }, restore: nil,
            execute: { a, c, d, progress throws(CloudError) in try await a.derogateRoom(c, device: d, progress: progress) },
            confirm: { _, _, _ in nil },
            group: { a, c, members, progress in await a.derogateGroup(c, members: members, progress: progress) },
            resendWhenUnconfirmed: false)
    ])

    static let system = CapabilityTable<HSLAdapter>([
        // A second diagnosis request is harmless: sent again when it cannot be told whether the first arrived.
        Handler(
            "diagnosis",
            validate: { i throws(CommandRejection) in
                try CapabilityValidation.allowOnly(i.body, [])
                return [:]
            }, facts: Handler.noFacts, restore: nil,
            execute: { a, _, d, _ throws(CloudError) in try await a.startDiagnosis(device: d) },
            confirm: { _, _, _ in nil }, resendWhenUnconfirmed: true)
    ])

    static func table(_ node: String) -> CapabilityTable<HSLAdapter>? {
        roomId(node) != nil ? room : node == systemNode ? system : nil
    }

    // MARK: the adapter's command interface, through the tables

    public func capabilities(of node: String) -> Set<String> { Self.table(node)?.names ?? [] }

    public func validate(node: String, capability: String, body: [String: JSONValue], device: DeviceSnapshot) throws(CommandRejection) -> JSONValue {
        guard device.nodes[node] != nil else {
            let known = device.nodes.keys.sorted().joined(separator: ", ")
            throw CommandRejection(
                .unknownTarget, "home \"\(device.vendorId)\" has no room \"\(node)\"; rooms: \(known.isEmpty ? "none known" : known)")
        }
        guard let table = Self.table(node) else { throw CommandRejection(.unsupported, "\"\(capability)\" is not supported on \(node)") }
        return try table.handler(capability, node: node)
            .validate(ValidationInput(body: body, node: node, device: device, now: clock.now(), localTime: localTime))
    }

    public func facts(node: String, capability: String, params: JSONValue) -> CommandFacts {
        var f = Self.table(node)?[capability]?.facts(params) ?? CommandFacts()
        // An explicit window's length in the box's local time (a night that changes the clock is an hour off in UTC).
        if f.offsetMinutes != nil { f.offsetMinutes = Self.derogationMinutes(params, localTime) }
        return f
    }

    public func execute(_ command: Command, device: DeviceSnapshot) async throws(CloudError) -> String? {
        try await execute(command, device: device) { _, _ in }
    }

    public func execute(_ command: Command, device: DeviceSnapshot, progress: @escaping ProgressSink) async throws(CloudError) -> String? {
        guard let h = Self.table(command.node)?[command.capability] else {
            throw CloudError(.rejected, message: "\(command.capability) is not a HomeSmartlink capability of \(command.node)")
        }
        return try await h.execute(self, command, device, progress)
    }

    public func executeGroup(
        _ command: Command, members: [(device: DeviceSnapshot, node: String)],
        progress: @escaping ProgressSink
    ) async -> [MemberOutcome] {
        guard let group = Self.room[command.capability]?.executeGroup else {
            let e = CloudError(.rejected, message: "\(command.capability) cannot be sent to a HomeSmartlink group")
            return members.map { MemberOutcome(member: "\($0.device.id)/\($0.node)", error: e) }
        }
        return await group(self, command, members, progress)
    }

    public func resendWhenUnconfirmed(_ command: Command) -> Bool {
        Self.table(command.node)?[command.capability]?.resendWhenUnconfirmed ?? false
    }
}
