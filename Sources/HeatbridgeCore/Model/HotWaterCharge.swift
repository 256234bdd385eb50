/// The one capability the bridge itself acts on, named here and nowhere else in Core: the contract's neutral hot
/// water charge (`<node>/charge/set` `{"action":"start","duration_min":N}`) and the bridge-local default of its
/// duration (`<node>/charge-duration/set`). The legionella limit starts a charge, a charge sent without a duration
/// gets the node's default, and a node that charges offers that default as a setting; everything else about a
/// charge (validation, sending it, reading it back) is the vendor's handler, registered under `capability`.
public enum HotWaterCharge {
    /// The capability vendors register for a hot water charge.
    public static let capability = "charge"
    /// The bridge's own setting of a node's default charge duration.
    public static let durationSetting = "charge-duration"
    /// The charge's duration member, in minutes.
    public static let durationMember = "duration_min"
    /// The node state member a charging node reports; the bridge adds `default_duration_min` to it.
    public static let stateMember = "charge"
}
