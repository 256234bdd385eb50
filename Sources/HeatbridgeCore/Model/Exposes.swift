/// What one node offers a front end, in neutral terms: values to show, and the commands behind each control.
/// Vendor adapters describe their nodes this way (`VendorAdapter.exposes`); Home Assistant discovery maps each
/// expose to an entity without knowing the vendor (zigbee2mqtt's *exposes*, in small).
///
/// `field` is the dotted path of a value in the node's state (`room_temperature`, `charge.active`); commands
/// go to `<base>/<device>/<node>/<capability>/set` like any other.
public enum Expose: Sendable, Equatable {
    /// A value to read.
    case sensor(Sensor)
    /// A true/false value to read.
    case binary(id: String, name: String, field: String, deviceClass: String? = nil)
    /// A room thermostat: measured and target temperature, optionally modes and a target to set.
    case thermostat(Thermostat)
    /// A hot-water tank: measured temperature, optionally modes.
    case waterHeater(WaterHeater)
    /// One of fixed options, set with `{"<param>": "<option>"}`.
    case choice(
        id: String, name: String, field: String, options: [String], capability: String, param: String,
        category: ExposeCategory? = nil)
    /// On/off, with the payload each sends.
    case toggle(id: String, name: String, field: String, capability: String, on: String, off: String)
    /// A command with a fixed payload.
    case action(id: String, name: String, capability: String, payload: String, category: ExposeCategory? = nil)
    /// One action per installer preset of `capability` (the configured derogation presets), named after `label`.
    case presets(capability: String, label: String)

    /// Where a front end files an entity that is not the device's main function.
    public enum ExposeCategory: String, Sendable, Equatable {
        case config, diagnostic
    }

    public struct Sensor: Sendable, Equatable {
        public var id: String
        public var name: String
        public var field: String
        public var unit: String?
        /// `temperature`, `power`, `duration`…
        public var deviceClass: String?
        /// How a front end keeps statistics of it: nil for none.
        public var stateClass: StateClass?
        public var category: ExposeCategory?

        /// Home Assistant's state classes: a value that varies (`measurement`), or a counter that only goes up
        /// (`total_increasing`, what the energy dashboard takes for kWh).
        public enum StateClass: String, Sendable, Equatable {
            case measurement
            case totalIncreasing = "total_increasing"
        }

        /// A measurement that varies continuously (worth long-term statistics).
        public var measurement: Bool { stateClass == .measurement }

        public init(
            id: String, name: String, field: String, unit: String? = nil, deviceClass: String? = nil, measurement: Bool = false,
            category: ExposeCategory? = nil
        ) {
            self.init(
                id: id, name: name, field: field, unit: unit, deviceClass: deviceClass,
                stateClass: measurement ? .measurement : nil, category: category)
        }

        public init(
            id: String, name: String, field: String, unit: String? = nil, deviceClass: String? = nil, stateClass: StateClass?,
            category: ExposeCategory? = nil
        ) {
            self.id = id
            self.name = name
            self.field = field
            self.unit = unit
            self.deviceClass = deviceClass
            self.stateClass = stateClass
            self.category = category
        }
    }

    /// Operating modes: the front end's names mapped one by one to the device's values in `field`.
    public struct Modes: Sendable, Equatable {
        public var field: String
        /// In display order: (front end's name, device's value).
        public var pairs: [Pair]
        /// The front end's mode shown for a device value not in `pairs`.
        public var fallback: String
        public var capability: String
        public var param: String

        public struct Pair: Sendable, Equatable {
            public var front: String
            public var device: String
            public init(_ front: String, _ device: String) {
                self.front = front
                self.device = device
            }
        }

        public init(field: String, pairs: [Pair], fallback: String, capability: String, param: String) {
            self.field = field
            self.pairs = pairs
            self.fallback = fallback
            self.capability = capability
            self.param = param
        }
    }

    public struct Thermostat: Sendable, Equatable {
        public var id: String
        public var name: String
        public var currentField: String
        public var targetField: String
        public var min: Double
        public var max: Double
        public var step: Double
        public var modes: Modes?
        /// The capability and parameter that set the target (`{"<param>": <value>}`); nil when it is read-only.
        public var setTarget: (capability: String, param: String)?
        /// The device's mode value (in `modes.field`) in which the node follows its week program: the target
        /// shown then is the program's level now (`schedule_now.setpoint`), not `targetField`.
        public var programMode: String?

        public init(
            id: String, name: String, currentField: String, targetField: String, min: Double, max: Double, step: Double,
            modes: Modes? = nil, setTarget: (capability: String, param: String)? = nil, programMode: String? = nil
        ) {
            self.programMode = programMode
            self.id = id
            self.name = name
            self.currentField = currentField
            self.targetField = targetField
            self.min = min
            self.max = max
            self.step = step
            self.modes = modes
            self.setTarget = setTarget
        }

        public static func == (a: Thermostat, b: Thermostat) -> Bool {
            a.id == b.id && a.name == b.name && a.currentField == b.currentField && a.targetField == b.targetField && a.min == b.min
                && a.max == b.max && a.step == b.step && a.modes == b.modes && a.setTarget?.capability == b.setTarget?.capability
                && a.setTarget?.param == b.setTarget?.param && a.programMode == b.programMode
        }
    }

    public struct WaterHeater: Sendable, Equatable {
        public var id: String
        public var name: String
        public var currentField: String
        public var min: Double
        public var max: Double
        public var modes: Modes?
        /// The temperature the tank heats to (null when it has none, e.g. off).
        public var targetField: String?
        /// As `Thermostat.programMode`: in this mode the target is the program's level now.
        public var programMode: String?
        /// The capability and parameter that set the target.
        public var setTarget: Setter?
        /// On and off as mode commands (`{"<param>": "<on>"}` / `…"<off>"`), where the device has an off mode.
        public var power: Power?

        public struct Setter: Sendable, Equatable {
            public var capability: String
            public var param: String
            public init(capability: String, param: String) {
                self.capability = capability
                self.param = param
            }
        }

        public struct Power: Sendable, Equatable {
            public var capability: String
            public var on: String
            public var off: String
            public init(capability: String, on: String, off: String) {
                self.capability = capability
                self.on = on
                self.off = off
            }
        }

        public init(
            id: String, name: String, currentField: String, min: Double, max: Double, modes: Modes? = nil, targetField: String? = nil,
            programMode: String? = nil, setTarget: Setter? = nil, power: Power? = nil
        ) {
            self.id = id
            self.name = name
            self.currentField = currentField
            self.min = min
            self.max = max
            self.modes = modes
            self.targetField = targetField
            self.programMode = programMode
            self.setTarget = setTarget
            self.power = power
        }
    }
}
