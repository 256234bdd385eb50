// heatbridge relay: scope checks and answer filtering that nginx's own directives cannot express.

/** The vendor ids a box may touch, from its boxes.map entry ("bosch:101 podero:abc hsl:64f"). */
function scope(r, vendor) {
    return (r.variables.box_scope || '').split(/\s+/)
        .filter(function (s) { return s.indexOf(vendor + ':') === 0; })
        .map(function (s) { return s.slice(vendor.length + 1); });
}

/** $bosch_in_scope: "1" when the gateway in the path is one of the box's. */
function boschInScope(r) {
    return scope(r, 'bosch').indexOf(r.variables.bosch_gw) >= 0 ? '1' : '0';
}

/** GET /bosch/hvacs: the partner's gateway list, cut down to the box's own. */
async function boschGateways(r) {
    if (r.method !== 'GET') {
        r.return(405, '{"message":"relay: only GET"}');
        return;
    }
    const reply = await r.subrequest('/_bosch/hvacs', { method: 'GET' });
    if (reply.status !== 200) {
        r.return(reply.status, reply.responseText);
        return;
    }
    let list;
    try {
        list = JSON.parse(reply.responseText);
    } catch (e) {
        r.return(502, '{"message":"relay: unreadable gateway list from Bosch"}');
        return;
    }
    const own = scope(r, 'bosch');
    r.headersOut['Content-Type'] = 'application/json';
    r.return(200, JSON.stringify(Array.isArray(list) ? list.filter(function (g) { return own.indexOf(String(g.gatewayId)) >= 0; }) : []));
}

/** A refusal in the shape every vendor's client reads: `message` (Bosch, HomeSmartlink) and `detail` (Podero). */
function refuse(r, status, text) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify({ message: 'relay: ' + text, detail: 'relay: ' + text }));
}

/** Passes an upstream answer on, with the headers a box acts on. */
function pass(r, reply, body) {
    const retry = reply.headersOut['Retry-After'];
    if (retry !== undefined) r.headersOut['Retry-After'] = retry;
    r.headersOut['Content-Type'] = reply.headersOut['Content-Type'] || 'application/json';
    r.return(reply.status, body === undefined ? reply.responseText : body);
}

// Ids the cloud hands out (HomeSmartlink trigger and message ids) name no home, so the relay cannot check them
// against a scope: it signs each one for the box it was issued to ("<id>.<mac>") and accepts it back only
// from that box. Stateless: nothing to keep between requests or across reloads.
function sign(r, id) {
    const mac = require('crypto').createHmac('sha256', r.variables.relay_id_key)
        .update(r.variables.box + '\n' + id).digest('base64url');
    return id + '.' + mac.slice(0, 22);
}

function unsign(r, tagged) {
    if (typeof tagged !== 'string') return null;
    const dot = tagged.lastIndexOf('.');
    if (dot <= 0) return null;
    const id = tagged.slice(0, dot);
    return sign(r, id) === tagged ? id : null;
}

/** The request body as JSON, or undefined. */
function bodyJSON(r) {
    try {
        return JSON.parse(r.requestText || '');
    } catch (e) {
        return undefined;
    }
}

/** /hsl/...: every HomeSmartlink call a box makes is a POST or PUT with a JSON body naming a home or an id. */
async function hsl(r) {
    const path = r.uri.slice('/hsl'.length);
    const route = r.method + ' ' + path;
    const own = scope(r, 'hsl');
    const body = bodyJSON(r);
    const box = r.variables.box;
    function ownHome(h) { return own.indexOf(String(h)) >= 0; }
    let forward = r.requestText;
    switch (route) {
    case 'POST /partners/1/config':
    case 'POST /partners/1/request':
        if (!body || !ownHome(body.homeId)) return refuse(r, 403, 'home ' + (body && body.homeId) + ' is not in the scope of box ' + box);
        break;
    case 'POST /partners/1/derogations': {
        const items = body && Array.isArray(body.derogations) ? body.derogations : [];
        if (items.length === 0) return refuse(r, 400, 'a derogation request lists its derogations');
        const foreign = items.filter(function (d) { return !d || !ownHome(d.homeId); });
        if (foreign.length > 0) return refuse(r, 403, 'home ' + (foreign[0] && foreign[0].homeId) + ' is not in the scope of box ' + box);
        break;
    }
    case 'POST /partners/1/report':
    case 'PUT /partners/1/request': {
        const key = route === 'PUT /partners/1/request' ? 'messageId' : 'trigger';
        const id = body ? unsign(r, body[key]) : null;
        if (id === null) return refuse(r, 403, key + ' ' + (body && body[key]) + ' was not issued to box ' + box);
        body[key] = id;
        forward = JSON.stringify(body);
        break;
    }
    default:
        return refuse(r, 403, r.method + ' ' + path + ' is not open to boxes');
    }
    const reply = await r.subrequest('/_hsl' + path, { method: r.method, body: forward });
    if (reply.status !== 200) return pass(r, reply);
    let answer;
    try {
        answer = JSON.parse(reply.responseText);
    } catch (e) {
        return pass(r, reply);
    }
    if (route === 'POST /partners/1/derogations') {
        ['startTrigger', 'endTrigger'].forEach(function (k) { if (typeof answer[k] === 'string') answer[k] = sign(r, answer[k]); });
    } else if (route === 'POST /partners/1/request') {
        if (typeof answer.messageId === 'string') answer.messageId = sign(r, answer.messageId);
    } else if (route === 'POST /partners/1/report') {
        // The report of a derogation the box sent lists its own homes only; cut anything else out anyway.
        const report = answer.response;
        if (report && Array.isArray(report.details)) report.details = report.details.filter(function (d) { return d && ownHome(d.homeId); });
    }
    pass(r, reply, JSON.stringify(answer));
}

/** The Podero bearer token (cached by nginx for less than its lifetime); `renew` asks the token endpoint. */
async function poderoToken(r, renew) {
    const reply = await r.subrequest('/_podero/token', { method: 'GET', args: renew ? 'renew=1' : '' });
    if (reply.status !== 200) return null;
    try {
        const token = JSON.parse(reply.responseText).access_token;
        return typeof token === 'string' && token.length > 0 ? token : null;
    } catch (e) {
        return null;
    }
}

/** /podero/api/partners/v2.0/org/<org>/users[/<user>/heat-pumps[/<heat pump>[/statistics]]]. */
async function podero(r) {
    const prefix = '/podero/api/partners/v2.0/';
    const box = r.variables.box;
    if (r.uri.indexOf(prefix) !== 0) return refuse(r, 403, r.uri + ' is not open to boxes');
    const seg = r.uri.slice(prefix.length).split('/');
    // Scope entries are "podero:<user>/<heat pump>": an owner and one of its heat pumps.
    const own = scope(r, 'podero').map(function (s) { return s.split('/'); });
    function ownUser(u) { return own.some(function (p) { return p[0] === u; }); }
    function ownPump(u, h) { return own.some(function (p) { return p[0] === u && p[1] === h; }); }
    if (seg[0] !== 'org' || seg.length < 3 || seg[2] !== 'users' || seg.some(function (x) { return x === ''; })) {
        return refuse(r, 403, r.uri + ' is not open to boxes');
    }
    let filter = null;
    if (seg.length === 3) {
        if (r.method !== 'GET') return refuse(r, 403, r.method + ' ' + r.uri + ' is not open to boxes');
        filter = function (u) { return ownUser(String(u.id)); };
    } else if (seg.length === 5 && seg[4] === 'heat-pumps') {
        if (r.method !== 'GET') return refuse(r, 403, r.method + ' ' + r.uri + ' is not open to boxes');
        if (!ownUser(seg[3])) return refuse(r, 403, 'user ' + seg[3] + ' is not in the scope of box ' + box);
        filter = function (h) { return ownPump(seg[3], String(h.id)); };
    } else if (seg[4] === 'heat-pumps' && (seg.length === 6 || (seg.length === 7 && seg[6] === 'statistics'))) {
        if (!ownPump(seg[3], seg[5])) return refuse(r, 403, 'heat pump ' + seg[5] + ' is not in the scope of box ' + box);
    } else {
        return refuse(r, 403, r.uri + ' is not open to boxes');
    }
    let reply;
    for (let attempt = 0; attempt < 2; attempt++) {
        const token = await poderoToken(r, attempt > 0);
        if (token === null) return refuse(r, 503, 'the Podero token endpoint did not issue a token');
        r.variables.podero_bearer = 'Bearer ' + token;
        const options = { method: r.method, args: r.variables.args || '' };
        if (r.requestText) options.body = r.requestText;
        reply = await r.subrequest('/_podero' + r.uri.slice('/podero'.length), options);
        // A 401 with a cached token: it was revoked or expired early; renew it once.
        if (reply.status !== 401) break;
    }
    if (filter === null || reply.status !== 200) return pass(r, reply);
    let list;
    try {
        list = JSON.parse(reply.responseText);
    } catch (e) {
        return refuse(r, 502, 'unreadable list from Podero');
    }
    pass(r, reply, JSON.stringify(Array.isArray(list) ? list.filter(function (x) { return x && filter(x); }) : []));
}

export default { boschInScope, boschGateways, hsl, podero };
