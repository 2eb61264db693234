import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// The session ticket keys of one `TLSServerContext`: a current key that encrypts new tickets
/// and the previous one, still accepted (its tickets are renewed) until the next rotation.
/// Rotated every `rotationInterval` seconds, checked when a ticket is issued. Each key is a
/// 16-byte name, a 32-byte AES-256-CBC key and a 32-byte HMAC-SHA256 key.
final class TicketKeys {
    static let keySize = 80
    let rotationInterval: Int
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var current: [UInt8]
    private var previous: [UInt8]?
    private var createdAt: Int

    init(rotationInterval: Int) throws {
        self.rotationInterval = rotationInterval
        pthread_mutex_init(mutex, nil)
        guard let key = TicketKeys.newKey() else { throw TLSError("RAND_bytes failed for the session ticket key") }
        current = key
        createdAt = TicketKeys.now()
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    static func now() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec
    }

    static func newKey() -> [UInt8]? {
        var key = [UInt8](repeating: 0, count: keySize)
        let ok = key.withUnsafeMutableBytes { RAND_bytes($0.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(keySize)) }
        return ok == 1 ? key : nil
    }

    /// Makes a new current key; the current one becomes the previous one (the older is dropped).
    func rotate() {
        guard let key = TicketKeys.newKey() else { return }
        pthread_mutex_lock(mutex)
        previous = current
        current = key
        createdAt = TicketKeys.now()
        pthread_mutex_unlock(mutex)
    }

    /// The ticket key callback's work (see SSL_CTX_set_tlsext_ticket_key_evp_cb): 1 to go on,
    /// 2 to accept and renew a ticket of the previous key, 0 when the ticket's key is unknown.
    func callback(keyName: UnsafeMutablePointer<UInt8>, iv: UnsafeMutablePointer<UInt8>,
                  cipher: OpaquePointer, mac: OpaquePointer, encrypt: Bool) -> Int32 {
        var key: [UInt8]
        var renew = false
        pthread_mutex_lock(mutex)
        if encrypt && TicketKeys.now() - createdAt >= rotationInterval, let fresh = TicketKeys.newKey() {
            previous = current
            current = fresh
            createdAt = TicketKeys.now()
        }
        if encrypt {
            key = current
        } else if TicketKeys.matches(current, keyName) {
            key = current
        } else if let previous, TicketKeys.matches(previous, keyName) {
            key = previous
            renew = true
        } else {
            pthread_mutex_unlock(mutex)
            return 0
        }
        pthread_mutex_unlock(mutex)
        return key.withUnsafeBufferPointer { k -> Int32 in
            let base = k.baseAddress!
            if encrypt { keyName.update(from: base, count: 16) }
            guard portico_ticket_crypto_init(cipher, mac, base + 16, base + 48, iv, encrypt ? 1 : 0) == 1 else { return -1 }
            // A decrypted ticket is always renewed (2), as nginx does for TLS 1.3: clients use a
            // TLS 1.3 ticket once, so without a fresh one every other connection (wrk's pattern)
            // fell back to a full handshake.
            if !encrypt { return 2 }
            return renew ? 2 : 1
        }
    }

    private static func matches(_ key: [UInt8], _ name: UnsafeMutablePointer<UInt8>) -> Bool {
        for i in 0..<16 where key[i] != name[i] { return false }
        return true
    }
}
