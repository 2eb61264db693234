/// A failed store or API operation, shaped like Kubernetes' `Status` (reason and HTTP code).
public struct StoreError: Error, Equatable, CustomStringConvertible {
    public enum Reason: String, Sendable {
        case notFound = "NotFound"
        case alreadyExists = "AlreadyExists"
        case conflict = "Conflict"
        case invalid = "Invalid"
        case gone = "Expired"
        case badRequest = "BadRequest"
        case methodNotAllowed = "MethodNotAllowed"
        case unsupportedMediaType = "UnsupportedMediaType"
        case internalError = "InternalError"
        case unauthorized = "Unauthorized"

        public var code: Int {
            switch self {
            case .notFound: return 404
            case .alreadyExists, .conflict: return 409
            case .invalid: return 422
            case .gone: return 410
            case .badRequest: return 400
            case .methodNotAllowed: return 405
            case .unsupportedMediaType: return 415
            case .internalError: return 500
            case .unauthorized: return 401
            }
        }
    }

    /// One field problem of an Invalid error (Kubernetes' `StatusCause`).
    public struct Cause: Equatable, Sendable {
        public var field: String
        public var reason: String
        public var message: String
        public init(field: String, reason: String = "FieldValueInvalid", message: String) {
            self.field = field; self.reason = reason; self.message = message
        }
    }

    public var reason: Reason
    public var message: String
    public var name: String?
    public var group: String?
    public var kind: String?
    public var causes: [Cause]

    public init(_ reason: Reason, _ message: String, name: String? = nil, group: String? = nil, kind: String? = nil, causes: [Cause] = []) {
        self.reason = reason; self.message = message; self.name = name; self.group = group; self.kind = kind; self.causes = causes
    }

    public var code: Int { reason.code }
    public var description: String { "\(reason.rawValue) (\(code)): \(message)" }

    static func notFound(_ type: ResourceType, _ name: String) -> StoreError {
        StoreError(.notFound, "\(type.groupResource) \"\(name)\" not found", name: name, group: type.group, kind: type.resource)
    }

    static func alreadyExists(_ type: ResourceType, _ name: String) -> StoreError {
        StoreError(.alreadyExists, "\(type.groupResource) \"\(name)\" already exists", name: name, group: type.group, kind: type.resource)
    }

    static func conflict(_ type: ResourceType, _ name: String) -> StoreError {
        StoreError(.conflict, "Operation cannot be fulfilled on \(type.groupResource) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again",
                   name: name, group: type.group, kind: type.resource)
    }

    static func invalid(_ type: ResourceType, _ name: String, _ causes: [Cause]) -> StoreError {
        let list = causes.map { "\($0.field): \($0.message)" }.joined(separator: ", ")
        return StoreError(.invalid, "\(type.kind) \"\(name)\" is invalid: \(list)", name: name, group: type.group, kind: type.kind, causes: causes)
    }
}
