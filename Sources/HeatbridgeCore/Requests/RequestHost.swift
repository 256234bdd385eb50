import Logging

/// What `RequestDesk` needs of the bridge: its status document and health, the settings a request reads or
/// changes (the config as loaded, the log level), the poller a `poll` request asks, and the MQTT side.
protocol RequestHost: PollHost {
    var topics: TopicLayout { get }
    var clock: any Clock { get }
    var logger: Logger { get }
    func statusDocument() -> JSONValue
    func healthCheck() -> JSONValue
    /// Publishes at QoS 1.
    func publish(_ topic: String, _ payload: [UInt8], retain: Bool)
    /// Publishes on a v5 Response Topic with the request's Correlation Data.
    func publishReply(_ reply: ReplyAddress, _ payload: [UInt8])
}
