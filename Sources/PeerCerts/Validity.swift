import Foundation

/// When a certificate is valid. Tests pass windows in the past to make expired certificates.
public struct Validity: Sendable, Hashable {
    public var notBefore: Date
    public var notAfter: Date

    /// Backdating notBefore tolerates clocks that run a little behind the issuing machine's.
    public static let clockSkewSeconds: TimeInterval = 300
    public static let caDaysDefault = 3650
    public static let leafDaysDefault = 365

    public init(notBefore: Date, notAfter: Date) {
        self.notBefore = notBefore
        self.notAfter = notAfter
    }

    /// Valid from now (less the clock-skew allowance) for `days` days.
    public static func days(_ days: Int, from now: Date = Date()) -> Validity {
        Validity(
            notBefore: now.addingTimeInterval(-clockSkewSeconds),
            notAfter: now.addingTimeInterval(TimeInterval(days) * 86_400))
    }

    func check() throws {
        guard notBefore < notAfter else {
            throw CertsError.invalidValidity("notBefore \(notBefore) is not before notAfter \(notAfter)")
        }
    }
}
