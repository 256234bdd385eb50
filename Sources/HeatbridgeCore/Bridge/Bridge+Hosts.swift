/// The bridge as the host of the components that need nothing of it beyond its own state and a few calls:
/// `LiveState`, `LocalAnswers` and `Automation` (with the lease calls of the command pipeline passed on to it).
extension Bridge: LiveHost, LocalAnswerHost {}

extension Bridge: AutomationHost {
    func subscribe(_ topic: String) { mqtt.subscribe(topic, qos: 1) }

    func publishTriggerView(_ view: JSONValue) { retained.publish(topics.bridgeTriggers, view) }

    func startLease(_ c: Command, request: LeaseRequest, restore: JSONValue, now: EpochSeconds, group: String?) {
        automation.startLease(c, request: request, restore: restore, now: now, group: group, host: self)
    }

    func plainCommandAccepted(_ target: Target) { automation.plainCommandAccepted(target, host: self) }

    func leaseCommandFinished(_ c: Command, _ status: CommandStatus) { automation.leaseCommandFinished(c, status, host: self) }
}
