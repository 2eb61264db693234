import COpenSSL
import Foundation

/// One named AES-256 key of the key file.
struct EncryptionKey: Equatable {
    var name: String
    var bytes: [UInt8]
}

/// Sealing and opening of one stored row with AES-256-GCM (OpenSSL EVP), in the envelope
/// Kubernetes' aesgcm provider uses: `k8s:enc:aesgcm:v1:<keyname>:` + 12-byte nonce +
/// ciphertext + 16-byte tag. The row's key (`resource/namespace/name`) is the additional
/// authenticated data, so a ciphertext moved to another row no longer opens.
struct SecretCipher {
    static let prefix = "k8s:enc:aesgcm:v1:"
    static let nonceLength = 12
    static let tagLength = 16

    /// The first key encrypts; every key decrypts.
    let keys: [EncryptionKey]
    /// Where the keys came from, for error messages.
    let source: String

    var primary: EncryptionKey { keys[0] }

    /// What `open` found in a stored value.
    enum Opened {
        /// A plaintext row (written before encryption existed).
        case plaintext([UInt8])
        /// Decrypted; `keyName` is the key it was sealed with.
        case decrypted([UInt8], keyName: String)
    }

    func seal(_ plaintext: [UInt8], aad: String) throws -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: Self.nonceLength)
        guard RAND_bytes(&nonce, Int32(nonce.count)) == 1 else {
            throw StoreError(.internalError, "cannot encrypt: RAND_bytes failed")
        }
        let sealed = try Self.gcm(encrypt: true, key: primary.bytes, nonce: nonce, input: plaintext, aad: Array(aad.utf8), tag: nil)
        return Array((Self.prefix + primary.name + ":").utf8) + nonce + sealed
    }

    /// Opens a stored value; `what` names the object in errors (never its contents).
    func open(_ stored: [UInt8], aad: String, what: String) throws -> Opened {
        let prefix = Array(Self.prefix.utf8)
        guard stored.starts(with: prefix) else { return .plaintext(stored) }
        let rest = stored[prefix.count...]
        guard let colon = rest.firstIndex(of: UInt8(ascii: ":")) else {
            throw StoreError(.internalError, "\(what): stored value has a malformed encryption envelope (no key name)")
        }
        let keyName = String(decoding: rest[rest.startIndex..<colon], as: UTF8.self)
        guard let key = keys.first(where: { $0.name == keyName }) else {
            throw StoreError(.internalError, "\(what) is encrypted with key \"\(keyName)\", which is not in \(source) "
                + "(it has \(keys.map { "\"\($0.name)\"" }.joined(separator: ", "))): restore that key to the file to read it")
        }
        let body = Array(stored[(colon + 1)...])
        guard body.count >= Self.nonceLength + Self.tagLength else {
            throw StoreError(.internalError, "\(what): stored ciphertext under key \"\(keyName)\" is truncated")
        }
        let nonce = Array(body[0..<Self.nonceLength])
        let tag = Array(body[(body.count - Self.tagLength)...])
        let ciphertext = Array(body[Self.nonceLength..<(body.count - Self.tagLength)])
        do {
            let plain = try Self.gcm(encrypt: false, key: key.bytes, nonce: nonce, input: ciphertext, aad: Array(aad.utf8), tag: tag)
            return .decrypted(plain, keyName: keyName)
        } catch {
            throw StoreError(.internalError, "\(what): cannot decrypt with key \"\(keyName)\": authentication failed "
                + "(\(source) holds a different key under that name, or the stored row was altered or belongs to another object)")
        }
    }

    /// One AES-256-GCM operation. Encrypting returns ciphertext + tag; decrypting checks `tag`.
    static func gcm(encrypt: Bool, key: [UInt8], nonce: [UInt8], input: [UInt8], aad: [UInt8], tag: [UInt8]?) throws -> [UInt8] {
        guard key.count == 32, let ctx = EVP_CIPHER_CTX_new() else { throw StoreError(.internalError, "cannot set up AES-256-GCM") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        let failure = StoreError(.internalError, "AES-256-GCM \(encrypt ? "encryption" : "decryption") failed")
        let initialize = encrypt ? EVP_EncryptInit_ex : EVP_DecryptInit_ex
        let update = encrypt ? EVP_EncryptUpdate : EVP_DecryptUpdate
        guard initialize(ctx, EVP_aes_256_gcm(), nil, nil, nil) == 1,
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(nonce.count), nil) == 1,
              initialize(ctx, nil, nil, key, nonce) == 1 else { throw failure }
        var length: Int32 = 0
        if !aad.isEmpty { guard update(ctx, nil, &length, aad, Int32(aad.count)) == 1 else { throw failure } }
        var out = [UInt8](repeating: 0, count: input.count + 16)
        var written: Int32 = 0
        if !input.isEmpty {
            guard update(ctx, &out, &written, input, Int32(input.count)) == 1 else { throw failure }
        }
        if var expected = tag {
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(expected.count), &expected) == 1 else { throw failure }
        }
        var final: Int32 = 0
        let finished = out.withUnsafeMutableBufferPointer { buffer in
            encrypt ? EVP_EncryptFinal_ex(ctx, buffer.baseAddress! + Int(written), &final)
                    : EVP_DecryptFinal_ex(ctx, buffer.baseAddress! + Int(written), &final)
        }
        guard finished == 1 else { throw failure }
        out.removeSubrange(Int(written + final)...)
        if encrypt {
            var t = [UInt8](repeating: 0, count: tagLength)
            guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(tagLength), &t) == 1 else { throw failure }
            out += t
        }
        return out
    }
}

/// The key file (`<store>/encryption-keys`, mode 0600): one key a line, `name:base64(32 bytes)`,
/// `#` comments. The first key encrypts new writes; all of them decrypt. Created with one random
/// key on first start; `rotated()` adds a new first key.
enum EncryptionKeyFile {
    static let fileName = "encryption-keys"
    static let header = """
        # Portico Secret encryption keys (AES-256-GCM). Keep this file private (mode 0600) and back it up
        # with the store: without the key a Secret was written with, that Secret cannot be read.
        # The first key encrypts; every key listed decrypts. `portico encryption rotate` adds a new first key.

        """

    /// Reads the key file, creating it with one fresh key when it does not exist.
    static func loadOrCreate(path: String) throws -> SecretCipher {
        if !FileManager.default.fileExists(atPath: path) {
            try write([try fresh(name: "key1")], to: path, exclusive: true)
        }
        return try load(path: path)
    }

    static func load(path: String) throws -> SecretCipher {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw StoreError(.internalError, "\(path): cannot read the encryption key file: \(String(cString: strerror(errno)))")
        }
        if st.st_mode & 0o077 != 0 {
            throw StoreError(.internalError, "\(path): the encryption key file is readable by others (mode \(String(st.st_mode & 0o777, radix: 8))): run chmod 600 on it")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw StoreError(.internalError, "\(path): cannot read the encryption key file")
        }
        var keys: [EncryptionKey] = []
        for (i, raw) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            // The key material is never quoted in errors: only the line number and the name.
            guard let colon = line.firstIndex(of: ":") else {
                throw StoreError(.internalError, "\(path) line \(i + 1): expected name:base64-key")
            }
            let name = String(line[..<colon])
            guard isValidName(name) else {
                throw StoreError(.internalError, "\(path) line \(i + 1): key name \"\(name)\" must be 1-64 letters, digits, '-' or '_'")
            }
            guard let bytes = Data(base64Encoded: String(line[line.index(after: colon)...])), bytes.count == 32 else {
                throw StoreError(.internalError, "\(path) line \(i + 1): key \"\(name)\" must be 32 bytes, base64-encoded")
            }
            guard !keys.contains(where: { $0.name == name }) else {
                throw StoreError(.internalError, "\(path) line \(i + 1): key \"\(name)\" is listed twice")
            }
            keys.append(EncryptionKey(name: name, bytes: Array(bytes)))
        }
        guard !keys.isEmpty else { throw StoreError(.internalError, "\(path): the encryption key file has no key") }
        return SecretCipher(keys: keys, source: path)
    }

    /// The keys with a new random first key (`key<N+1>`); the file is not written.
    static func rotated(_ keys: [EncryptionKey]) throws -> [EncryptionKey] {
        let highest = keys.compactMap { $0.name.hasPrefix("key") ? Int($0.name.dropFirst(3)) : nil }.max() ?? 0
        return [try fresh(name: "key\(highest + 1)")] + keys
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64 && name.utf8.allSatisfy {
            ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_")
        }
    }

    static func fresh(name: String) throws -> EncryptionKey {
        var bytes = [UInt8](repeating: 0, count: 32)
        guard RAND_bytes(&bytes, 32) == 1 else { throw StoreError(.internalError, "cannot create an encryption key: RAND_bytes failed") }
        return EncryptionKey(name: name, bytes: bytes)
    }

    /// Writes the file with mode 0600: `exclusive` creates it (failing if it exists); otherwise a
    /// temporary file is written, synced and renamed over it, so a crash leaves the old or new keys.
    static func write(_ keys: [EncryptionKey], to path: String, exclusive: Bool) throws {
        let text = header + keys.map { "\($0.name):\(Data($0.bytes).base64EncodedString())\n" }.joined()
        let target = exclusive ? path : path + ".tmp"
        if !exclusive { unlink(target) }
        let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError(.internalError, "\(target): cannot create the encryption key file: \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let ok = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count && fsync(fd) == 0
        close(fd)
        guard ok else {
            unlink(target)
            throw StoreError(.internalError, "\(target): cannot write the encryption key file")
        }
        if !exclusive {
            guard rename(target, path) == 0 else {
                unlink(target)
                throw StoreError(.internalError, "\(path): cannot replace the encryption key file: \(String(cString: strerror(errno)))")
            }
        }
        let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 { fsync(dir); close(dir) }
    }
}
