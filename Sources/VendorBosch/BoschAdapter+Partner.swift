import HeatbridgeCore

// MARK: API key

extension BoschAdapter {
    public func credentialExpiry() -> EpochSeconds? { key.expiresAt }

    /// Rotates the key with `POST /api-keys` once it is within the configured time of its expiry: the new key
    /// is stored first (atomically, 0600) and only then used, so a crash in between loses nothing; the old
    /// key stays valid until its own expiry [pub: security].
    public func renewCredential(now: EpochSeconds) async -> CredentialRenewal? {
        guard let rotation = key.rotation, key.claimRotation(now: now) else { return nil }
        let fresh: BoschWire.NewApiKey
        do {
            fresh = try await newKey()
        } catch {
            return .failed(error.description)
        }
        if let problem = rotation.persist(fresh.apiKey) { return .failed("cannot store the new key: \(problem)") }
        key.replace(with: fresh.apiKey)
        return .renewed(expires: BoschWire.keyExpiry(fresh.apiKey) ?? fresh.expiresAt.flatMap(Timestamp.parse))
    }

    /// `POST /api-keys`: a new key valid 6 months; the caller stores it.
    public func newKey() async throws(CloudError) -> BoschWire.NewApiKey {
        let body = try await call("POST", BoschWire.Path.apiKeys)
        guard let k = BoschWire.decode(BoschWire.NewApiKey.self, body), k.apiKey.hasPrefix("xHCSAPI") else {
            throw CloudError(.badResponse, status: 200, message: "unreadable answer to POST /api-keys")
        }
        return k
    }

    /// The partner's stored keys (ids and dates, never the keys).
    public func listKeys() async throws(CloudError) -> [BoschWire.StoredApiKey] {
        try await get([BoschWire.StoredApiKey].self, BoschWire.Path.apiKeys)
    }

    public func deleteKey(_ id: String) async throws(CloudError) {
        _ = try await call("DELETE", BoschWire.Path.apiKey(id))
    }

    /// `POST /webhooks/simulation`: asks Bosch to send a test event to the partner's webhook endpoints.
    public func simulateWebhook(eventType: String, gatewayId: String?) async throws(CloudError) {
        _ = try await call(
            "POST", BoschWire.Path.webhookSimulation,
            body: BoschWire.encode(BoschWire.WebhookSimulation(eventType: eventType, gatewayId: gatewayId)))
    }
}

// MARK: installer tools

extension BoschAdapter {
    /// Every contract of the partner, in any status.
    public func contracts() async throws(CloudError) -> [BoschWire.Contract] {
        try await get([BoschWire.Contract].self, BoschWire.Path.contracts)
    }

    public func contract(_ gatewayId: String) async throws(CloudError) -> BoschWire.Contract {
        try await get(BoschWire.Contract.self, BoschWire.Path.contract(gatewayId))
    }

    /// ACCEPT (pending → active), REJECT (pending), REVOKE (active).
    public func changeContract(_ gatewayId: String, action: String) async throws(CloudError) -> BoschWire.Contract? {
        let body = try await call("PATCH", BoschWire.Path.contract(gatewayId), body: BoschWire.encode(BoschWire.ContractAction(action: action)))
        return BoschWire.decode(BoschWire.Contract.self, body)
    }

    /// Acknowledges a contract the end user closed.
    public func acknowledgeContract(_ gatewayId: String) async throws(CloudError) {
        _ = try await call("DELETE", BoschWire.Path.contract(gatewayId))
    }

    /// The partner's own identity (`companyId` for the portal link).
    public func identity() async throws(CloudError) -> BoschWire.KeyIdentity {
        try await get(BoschWire.KeyIdentity.self, BoschWire.Path.apiKeysMe)
    }

    /// The Gateway Management Portal link a customer opens to share a gateway with the partner. The session id
    /// must be a plain token (the portal mangles anything else) and the redirect URI https [doc].
    public static func onboardingLink(brand: String, companyId: String, redirectURI: String, sessionId: String) -> Result<String, CommandRejection> {
        guard let host = BoschWire.portalHosts[brand.lowercased()] else {
            return .failure(
                CommandRejection(.invalidPayload, "--brand must be one of \(BoschWire.portalHosts.keys.sorted().joined(separator: ", "))"))
        }
        guard let u = ParsedURL.parse(redirectURI), u.scheme == "https" else {
            return .failure(CommandRejection(.invalidPayload, "--redirect-uri must be an https URL (it is allow-listed at onboarding)"))
        }
        guard !sessionId.isEmpty, sessionId.count <= 128,
            sessionId.unicodeScalars.allSatisfy({ ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "-" || $0 == "_" }
            )
        else {
            return .failure(
                CommandRejection(
                    .invalidPayload,
                    "--session-id must be a plain token (letters, digits, '-' and '_', at most 128): the portal sanitises anything else"))
        }
        func enc(_ s: String) -> String {
            var out = ""
            for b in s.utf8 {
                let c = Character(UnicodeScalar(b))
                if c.isASCII && (c.isLetter || c.isNumber || "-_.~".contains(c)) {
                    out.append(c)
                } else {
                    let hex = String(b, radix: 16, uppercase: true)
                    out += "%" + (hex.count == 1 ? "0" + hex : hex)
                }
            }
            return out
        }
        return .success("https://\(host)/invite?companyId=\(enc(companyId))&redirectUri=\(enc(redirectURI))&sessionId=\(enc(sessionId))")
    }
}
