import HeatbridgeConfig
import HeatbridgeCore
import HeatbridgeWeb
import Logging

/// The daemon's HTTP listener (`http:`): `/` the status page, `/metrics` for Prometheus, `/healthz` for a
/// supervisor, `/status.json` the status document. A listener that cannot start is logged and left out: the
/// bridge's job does not depend on it.
enum StatusListener {
    static func start(
        _ config: HTTPConfig, bridge: Bridge, metrics: RequestMetrics, environment env: [String: String],
        logger: Logger
    ) -> WebListener? {
        guard config.port != 0 else { return nil }
        var token: String?
        if let ref = config.token {
            guard case .success(let t) = ConfigLoader.readSecret(ref, environment: env) else {
                logger.error("status page not served: its token cannot be read", metadata: ["key": "\(ref.key)"])
                return nil
            }
            token = t
        }
        let listener = WebListener(address: config.listen, port: config.port, token: token) { request in
            await answer(request, bridge: bridge, metrics: metrics)
        }
        do {
            try listener.start()
        } catch {
            logger.error("status page not served", metadata: ["error": "\(error)"])
            return nil
        }
        logger.info("status page and metrics", metadata: ["listen": "\(config.listen):\(listener.boundPortNumber)", "token": "\(token != nil)"])
        return listener
    }

    static func answer(_ request: WebRequest, bridge: Bridge, metrics: RequestMetrics) async -> WebResponse {
        switch request.path {
        case "/":
            return WebResponse(status: 200, contentType: StatusPage.contentType, body: Array(StatusPage.render(await bridge.statusDocument()).utf8))
        case "/metrics":
            let text = MetricsExposition.render(status: await bridge.statusDocument(), requests: metrics.snapshot())
            return WebResponse(status: 200, contentType: MetricsExposition.contentType, body: Array(text.utf8))
        case "/healthz":
            let health = await bridge.healthCheck()
            return WebResponse(status: health["healthy"] == true ? 200 : 503, contentType: "application/json", body: health.bytes)
        case "/status.json":
            return WebResponse(status: 200, contentType: "application/json", body: await bridge.statusDocument().bytes)
        default:
            return WebResponse(status: 404, text: "not found: try /, /metrics, /healthz or /status.json\n")
        }
    }
}
