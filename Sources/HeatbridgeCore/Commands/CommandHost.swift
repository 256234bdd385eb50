/// What the command pipeline needs of the bridge around it, and nothing more: the devices and accounts it
/// commands, the installer's limits and groups, the account states it holds commands for, and the places a
/// command's life touches the rest of the bridge (leases, the polling pace after a command, the store's
/// health, timers, spawning work). The bridge actor conforms; the pipeline runs isolated to it.
protocol CommandHost: Actor {
    var settings: BridgeSettings { get }
    var devices: DeviceRegistry { get }
    var accounts: [String: AccountRuntime] { get }
    /// Account states (why a command waits), counters and lost access (why a device is gone).
    var book: AccountBook { get set }
    var limits: LimitsPolicy { get set }
    /// False until every account has been read once: a command for a device not known yet waits for it.
    var allFirstPollsDone: Bool { get }

    /// Runs the command in the host's task group (`CommandPipeline.execute`).
    func startExecution(_ c: Command)
    /// Calls `CommandPipeline.pump(device)` at `at` (a held or backed-off command), unless it runs earlier.
    func wake(_ device: String, at: EpochSeconds)
    /// A command answered by the bridge itself (no cloud call), e.g. the energy history or the charge duration;
    /// true when `target` is one and it has been answered.
    func answerLocally(
        _ target: Target, id: String?, params: [String: JSONValue], entry: DeviceRegistry.Entry, now: EpochSeconds,
        validFor: Double, source: CommandSource, inbound: Inbound?
    ) -> Bool
    /// The value a command gets for a member it leaves out (`LocalDefault`): the one set for the node, or the
    /// initial one.
    func localDefault(_ d: LocalDefault, device: String, node: String) -> Int

    /// A call to the cloud was answered: the account's state follows (`rateLimited` with its `retryAt`, …).
    func setAccount(_ name: String, _ state: AccountState, error: String?, retryAt: EpochSeconds?)
    /// A command reached the device: polling speeds up for a while (`PollPacing`) and the device is read back.
    func commandSucceeded(_ account: AccountRuntime, device: String, capability: String?)
    /// What a store write did (health, readiness).
    func noteStore(_ effect: ResultOutbox.StoreEffect)
    /// A delivery report of a running command (`CommandPipeline.publishProgress`), from the adapter's task.
    func reportProgress(_ c: Command, _ progress: JSONValue, message: String?)
    /// The retained summary of the last command that ended.
    func publishLastResult(_ summary: JSONValue)

    /// A leased command was accepted: its lease starts (or is renewed) with the value to restore.
    func startLease(_ c: Command, request: LeaseRequest, restore: JSONValue, now: EpochSeconds, group: String?)
    /// A command without a lease for a target that has one: the lease ends without restoring.
    func plainCommandAccepted(_ target: Target)
    /// A command ended: a lease waiting for it is re-armed or dropped.
    func leaseCommandFinished(_ c: Command, _ status: CommandStatus)
}
