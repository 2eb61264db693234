import Reactor

enum SocketAddressForTests {
    static func loopback(_ port: UInt16) -> SocketAddress { SocketAddress(ip: "127.0.0.1", port: port)! }
}
