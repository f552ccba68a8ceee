#if canImport(Glibc)
import Glibc
#endif
import PeerConfig

/// Whether another program already listens where this peer must: NGINX started on a taken
/// port only logs `bind() failed` and the peer would run without its router, so `peer run`
/// checks the router's addresses first and refuses to start, naming them.
enum ListenCheck {
    /// How long a taken port may take to come free before the peer gives up.
    static let waitMillis = 5_000

    /// As `problem(binding:)`, looked at every 100 ms until it is free or `waitingUpToMillis`
    /// passed (the process sleeps: this runs once, at start, before anything else).
    static func problem(binding address: HostPort, waitingUpToMillis: Int) -> String? {
        var waited = 0
        while true {
            guard let problem = problem(binding: address) else { return nil }
            if waited >= waitingUpToMillis { return "\(problem) (still after \(waitingUpToMillis) ms)" }
            usleep(100_000)
            waited += 100
        }
    }

    /// Nil when `address` can be bound now, else why not (e.g. "Address already in use").
    static func problem(binding address: HostPort) -> String? {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(address.host, String(address.port), &hints, &list)
        guard rc == 0, let first = list else { return "cannot resolve \(address.host): \(String(cString: gai_strerror(rc)))" }
        defer { freeaddrinfo(first) }
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            if fd >= 0 {
                // As NGINX binds: SO_REUSEADDR, so only a listener (not TIME_WAIT) is a conflict.
                var one: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                let bound = bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen)
                let code = errno
                close(fd)
                if bound != 0 { return String(cString: strerror(code)) }
            }
            entry = info.pointee.ai_next
        }
        return nil
    }
}
