import Objects

/// Marks the Ingresses Portico serves (class `ingressClass`, or no class when
/// `claimUnclassedIngresses`) with `status.loadBalancer.ingress: [{ip: 127.0.0.1}]`.
final class IngressStatusController: Controller {
    let name = "ingress"
    unowned let m: ControllerManager

    init(manager: ControllerManager) { m = manager }

    func sync(namespace: String, name: String) throws -> SyncResult {
        guard var ing = try? m.store.get(.ingresses, namespace: namespace, name: name) else { return .done }
        let cls = ing[path: ["spec", "ingressClassName"]]?.stringValue
            ?? ObjectFields.annotations(ing)["kubernetes.io/ingress.class"]
        let ours = cls.map { $0 == m.options.ingressClass } ?? m.options.claimUnclassedIngresses
        guard ours else { return .done }
        let want: JSONValue = .object(["ingress": .array([.object(["ip": .string(m.options.ingressAddress)])])])
        guard ing[path: ["status", "loadBalancer"]] != want else { return .done }
        ing[path: ["status", "loadBalancer"]] = want
        try m.store.updateStatus(.ingresses, ing)
        return .done
    }
}
