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
    /// The current key, then the previous one (valid when `hasPrevious`): plain memory, so the
    /// callback copies 80 bytes instead of retaining and releasing arrays.
    private let keys = UnsafeMutablePointer<UInt8>.allocate(capacity: 2 * keySize)
    private var hasPrevious = false
    private var createdAt: Int
    /// AES-256-CBC fetched once (see portico_fetch_ticket_cipher).
    private let cipher: OpaquePointer

    init(rotationInterval: Int) throws {
        self.rotationInterval = rotationInterval
        guard let cipher = portico_fetch_ticket_cipher() else {
            keys.deallocate(); mutex.deallocate()
            throw TLSError("cannot fetch AES-256-CBC for session tickets: \(OpenSSLErrors.drain())")
        }
        guard TicketKeys.newKey(into: keys) else {
            EVP_CIPHER_free(cipher); keys.deallocate(); mutex.deallocate()
            throw TLSError("RAND_bytes failed for the session ticket key")
        }
        self.cipher = cipher
        pthread_mutex_init(mutex, nil)
        createdAt = TicketKeys.now()
    }

    deinit {
        EVP_CIPHER_free(cipher)
        keys.update(repeating: 0, count: 2 * TicketKeys.keySize)
        keys.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    static func now() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec
    }

    static func newKey(into key: UnsafeMutablePointer<UInt8>) -> Bool {
        RAND_bytes(key, Int32(keySize)) == 1
    }

    /// Makes a new current key; the current one becomes the previous one (the older is dropped).
    func rotate() {
        pthread_mutex_lock(mutex)
        rotateLocked()
        pthread_mutex_unlock(mutex)
    }

    private func rotateLocked() {
        var fresh = [UInt8](repeating: 0, count: TicketKeys.keySize)
        guard fresh.withUnsafeMutableBufferPointer({ TicketKeys.newKey(into: $0.baseAddress!) }) else { return }
        (keys + TicketKeys.keySize).update(from: keys, count: TicketKeys.keySize)
        keys.update(from: fresh, count: TicketKeys.keySize)
        hasPrevious = true
        createdAt = TicketKeys.now()
    }

    /// The ticket key callback's work (see SSL_CTX_set_tlsext_ticket_key_evp_cb): 1 to go on,
    /// 2 to accept and renew a ticket (of the previous key, or any with `renewEveryTicket`),
    /// 0 when the ticket's key is unknown.
    func callback(keyName: UnsafeMutablePointer<UInt8>, iv: UnsafeMutablePointer<UInt8>,
                  cipher cipherContext: OpaquePointer, mac: OpaquePointer, encrypt: Bool,
                  renewEveryTicket: Bool) -> Int32 {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: TicketKeys.keySize) { buffer -> Int32 in
            let key = buffer.baseAddress!
            pthread_mutex_lock(mutex)
            if encrypt && TicketKeys.now() - createdAt >= rotationInterval { rotateLocked() }
            var renew = false
            if encrypt || TicketKeys.matches(keys, keyName) {
                key.update(from: keys, count: TicketKeys.keySize)
            } else if hasPrevious && TicketKeys.matches(keys + TicketKeys.keySize, keyName) {
                key.update(from: keys + TicketKeys.keySize, count: TicketKeys.keySize)
                renew = true
            } else {
                pthread_mutex_unlock(mutex)
                return 0
            }
            pthread_mutex_unlock(mutex)
            defer { key.update(repeating: 0, count: TicketKeys.keySize) }
            if encrypt { keyName.update(from: key, count: 16) }
            guard portico_ticket_crypto_init(cipherContext, mac, cipher, key + 16, key + 48, iv, encrypt ? 1 : 0) == 1 else { return -1 }
            // Clients use a TLS 1.3 ticket once, so without a fresh one every other connection
            // (wrk's pattern) fell back to a full handshake: renew those, as nginx does. A TLS 1.2
            // client keeps its ticket, which is renewed only when its key is the previous one.
            return renew || (!encrypt && renewEveryTicket) ? 2 : 1
        }
    }

    private static func matches(_ key: UnsafePointer<UInt8>, _ name: UnsafeMutablePointer<UInt8>) -> Bool {
        memcmp(key, name, 16) == 0
    }
}
