import HeatbridgeCore
import VendorBosch
import VendorHomeSmartlink
import VendorPodero

/// The clouds heatbridge bridges: the one list that names them, taken by the daemon, the CLI and the tests.
/// A new vendor is one module here and one `VendorModule` in its own target; nothing in Core changes.
public enum HeatbridgeVendors {
    public static let all: [any VendorModule] = [BoschModule(), PoderoModule(), HSLModule()]
}
