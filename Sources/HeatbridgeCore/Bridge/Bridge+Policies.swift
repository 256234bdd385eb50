/// The bridge as `Automation`'s host, and the lease calls of the command pipeline passed on to it.
extension Bridge: AutomationHost {
    func subscribe(_ topic: String) { mqtt.subscribe(topic, qos: 1) }

    func publishTriggerView(_ view: JSONValue) { retained.publish(topics.bridgeTriggers, view) }

    func startLease(_ c: Command, request: LeaseRequest, restore: JSONValue, now: EpochSeconds, group: String?) {
        automation.startLease(c, request: request, restore: restore, now: now, group: group, host: self)
    }

    func plainCommandAccepted(_ target: Target) { automation.plainCommandAccepted(target, host: self) }

    func leaseCommandFinished(_ c: Command, _ status: CommandStatus) { automation.leaseCommandFinished(c, status, host: self) }
}
