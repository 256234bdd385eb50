/// The bridge as `RequestDesk`'s and `StatusReport`'s host: the one status document the request API, the status
/// page and `/metrics` are made from.
extension Bridge: RequestHost, StatusHost {
    var mqttCounters: MQTTCounters { mqtt.counters }

    func publish(_ topic: String, _ payload: [UInt8], retain: Bool) { mqtt.publish(topic: topic, payload: payload, qos: 1, retain: retain) }

    func publishReply(_ reply: ReplyAddress, _ payload: [UInt8]) {
        _ = mqtt.publishReply(topic: reply.topic, payload: payload, correlationData: reply.correlationData)
    }

    /// Healthy: the store writes, the broker is connected, and no account is locked out or offline.
    public func healthCheck() -> JSONValue { StatusReport.healthCheck(host: self) }

    /// One snapshot of the bridge (`StatusReport.document`): what `bridge/request/status` answers, and what the
    /// status page and `/metrics` render.
    public func statusDocument() -> JSONValue { StatusReport.document(host: self) }
}
