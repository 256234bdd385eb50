// heatbridge relay: scope checks and answer filtering that nginx's own directives cannot express.
//
// Nothing a box sends is forwarded as it came: every request to a cloud is rebuilt here from what was checked
// (an allowed method, a path of allowed segments, a JSON body parsed, checked and serialised again) and goes
// out through an internal location that passes none of the box's headers. Every answer goes back through
// `pass`, with an allow-list of headers and never with one of the relay's credentials in it.

/** The vendor ids a box may touch, from its boxes.map entry ("bosch:101 podero:abc hsl:64f"). */
function scope(r, vendor) {
    return (r.variables.box_scope || '').split(/\s+/)
        .filter(function (s) { return s.indexOf(vendor + ':') === 0; })
        .map(function (s) { return s.slice(vendor.length + 1); });
}

/** A refusal in the shape every vendor's client reads: `message` (Bosch, HomeSmartlink) and `detail` (Podero). */
function refuse(r, status, text) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify({ message: 'relay: ' + text, detail: 'relay: ' + text }));
}

// Path segments a box may name: ids and resource names only. Anything else (`..;`, `%00`, `;jsessionid`, dots)
// could mean another resource to a backend that normalises paths differently from nginx.
const SEGMENT = /^[A-Za-z0-9_-]{1,128}$/;
// Query strings, where a vendor has any (Podero statistics): names, values, lists and times.
const QUERY = /^[A-Za-z0-9_=&,.:%+-]{0,512}$/;
// Answer headers a box acts on; every other header an upstream sets stays at the relay.
const ANSWER_HEADERS = ['Retry-After', 'x-request-id', 'x-amzn-requestid', 'x-amz-apigw-id'];

/** The checked path segments below `prefix`, or null (after refusing) when one is not allowed. */
function segments(r, prefix) {
    if (r.uri.indexOf(prefix) !== 0) { refuse(r, 403, 'this endpoint is not open to boxes'); return null; }
    const seg = r.uri.slice(prefix.length).split('/');
    if (seg.length > 8 || !seg.every(function (s) { return SEGMENT.test(s); })) {
        refuse(r, 400, 'a path segment holds characters the relay does not forward (allowed: A-Z a-z 0-9 _ -)');
        return null;
    }
    return seg;
}

/** The method, when it is one of `allowed`; otherwise refuses with 405 and returns null. */
function method(r, allowed) {
    if (allowed.indexOf(r.method) >= 0) return r.method;
    r.headersOut['Allow'] = allowed.join(', ');
    refuse(r, 405, r.method + ' is not forwarded (allowed: ' + allowed.join(', ') + ')');
    return null;
}

// A JSON object in which two keys differ only by case or repeat exactly reads differently to different
// parsers (first wins, last wins, case-insensitive binding): the relay would check one value and the cloud
// act on the other. The scan below finds such keys in the raw text, which JSON.parse silently merges.
function ambiguousKey(text) {
    const stack = [];
    let i = 0;
    while (i < text.length) {
        const c = text[i];
        if (c === '{') { stack.push({}); i++; continue; }
        if (c === '}') { stack.pop(); i++; continue; }
        if (c !== '"') { i++; continue; }
        let j = i + 1;
        while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
        const literal = text.slice(i, j + 1);
        i = j + 1;
        while (i < text.length && ' \t\r\n'.indexOf(text[i]) >= 0) i++;
        if (text[i] !== ':' || stack.length === 0) continue;
        let key;
        try { key = JSON.parse(literal); } catch (e) { return literal; }
        const folded = key.toLowerCase();
        const seen = stack[stack.length - 1];
        if (Object.prototype.hasOwnProperty.call(seen, folded)) return key;
        seen[folded] = true;
    }
    return null;
}

/**
 * The request body checked: { ok: true, value, text } with `text` the JSON serialised again from the parsed
 * value (what goes upstream), or refuses and returns null. No body gives { ok: true, value: undefined }.
 */
function body(r) {
    const raw = r.requestText || '';
    if (raw === '') return { ok: true, value: undefined, text: undefined };
    let value;
    try { value = JSON.parse(raw); } catch (e) { refuse(r, 400, 'the request body is not JSON'); return null; }
    const key = ambiguousKey(raw);
    if (key !== null) { refuse(r, 400, 'the request body names key "' + key + '" twice (exactly or in another case)'); return null; }
    return { ok: true, value: value, text: JSON.stringify(value) };
}

/** The relay's credentials as they could appear in an answer: whole header values and their encoded parts. */
function credentials(r) {
    const out = [];
    [r.variables.bosch_api_key, r.variables.hsl_basic, r.variables.podero_basic, r.variables.podero_bearer, r.variables.relay_id_key]
        .forEach(function (v) {
            if (!v) return;
            out.push(v);
            const space = v.indexOf(' ');
            if (space > 0 && v.length - space > 8) out.push(v.slice(space + 1));
        });
    // The client secret inside a Basic credential, decoded (an upstream may echo the decoded pair).
    [r.variables.hsl_basic, r.variables.podero_basic].forEach(function (v) {
        if (!v || v.indexOf('Basic ') !== 0) return;
        try {
            const pair = Buffer.from(v.slice(6), 'base64').toString();
            const colon = pair.indexOf(':');
            if (colon >= 0 && pair.length - colon > 8) out.push(pair.slice(colon + 1));
        } catch (e) { /* not base64: nothing to look for */ }
    });
    return out;
}

/** Passes an upstream answer on: its status, the allowed headers and the body, never a relay credential. */
function pass(r, reply, text) {
    const out = text === undefined ? reply.responseText : text;
    const secrets = credentials(r);
    const allowed = ANSWER_HEADERS.map(function (h) { return reply.headersOut[h]; }).filter(function (v) { return v !== undefined; });
    if (secrets.some(function (s) { return (out || '').indexOf(s) >= 0 || allowed.some(function (v) { return String(v).indexOf(s) >= 0; }); })) {
        r.error('relay: the answer to box ' + r.variables.box + ' for ' + r.method + ' ' + r.uri + ' held a relay credential; withheld');
        return refuse(r, 502, 'the upstream answer was withheld: it reflected a relay credential');
    }
    ANSWER_HEADERS.forEach(function (h) { if (reply.headersOut[h] !== undefined) r.headersOut[h] = reply.headersOut[h]; });
    const type = reply.headersOut['Content-Type'];
    r.headersOut['Content-Type'] = type && /^application\/json(;|$)/.test(type) ? type : 'application/json';
    r.return(reply.status, out);
}

// ---- Bosch ----------------------------------------------------------------------------------------------

const BOSCH_METHODS = ['GET', 'PUT', 'PATCH', 'POST', 'DELETE'];

/** GET /bosch/health: the API's health, from the relay's cache (one upstream read for all boxes). */
async function boschHealth(r) {
    if (method(r, ['GET']) === null) return;
    if (r.variables.args || r.requestText) return refuse(r, 400, 'no query or body is forwarded here');
    const reply = await r.subrequest('/_bosch_shared/health', { method: 'GET' });
    pass(r, reply);
}

/** GET /bosch/hvacs: the partner's gateway list from the relay's cache, cut down to the box's own gateways. */
async function boschGateways(r) {
    if (method(r, ['GET']) === null) return;
    if (r.variables.args || r.requestText) return refuse(r, 400, 'no query or body is forwarded here');
    const reply = await r.subrequest('/_bosch_shared/hvacs', { method: 'GET' });
    if (reply.status !== 200) return pass(r, reply);
    let list;
    try {
        list = JSON.parse(reply.responseText);
    } catch (e) {
        return refuse(r, 502, 'unreadable gateway list from Bosch');
    }
    const own = scope(r, 'bosch');
    pass(r, reply, JSON.stringify(Array.isArray(list) ? list.filter(function (g) { return g && own.indexOf(String(g.gatewayId)) >= 0; }) : []));
}

/** /bosch/hvacs/<gateway>/...: one of the box's gateways, rebuilt from checked parts. */
async function bosch(r) {
    const m = method(r, BOSCH_METHODS);
    if (m === null) return;
    const seg = segments(r, '/bosch/');
    if (seg === null) return;
    if (seg[0] !== 'hvacs' || seg.length < 2) return refuse(r, 403, 'this endpoint is not open to boxes');
    if (scope(r, 'bosch').indexOf(seg[1]) < 0) return refuse(r, 403, 'gateway ' + seg[1] + ' is not in the scope of box ' + r.variables.box);
    if (r.variables.args) return refuse(r, 400, 'no query is forwarded to Bosch');
    const b = body(r);
    if (b === null) return;
    const options = { method: m };
    if (b.text !== undefined) options.body = b.text;
    const reply = await r.subrequest('/_bosch/' + seg.join('/'), options);
    pass(r, reply);
}

// ---- HomeSmartlink ----------------------------------------------------------------------------------------

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

/** /hsl/...: every HomeSmartlink call a box makes is a POST or PUT with a JSON body naming a home or an id. */
const HSL_ROUTES = ['POST /partners/1/config', 'POST /partners/1/request', 'POST /partners/1/derogations',
    'POST /partners/1/report', 'PUT /partners/1/request'];

async function hsl(r) {
    const seg = segments(r, '/hsl/');
    if (seg === null) return;
    const path = '/' + seg.join('/');
    const route = r.method + ' ' + path;
    // The routes a box uses are the allow-list of methods and paths at once.
    if (HSL_ROUTES.indexOf(route) < 0) return refuse(r, 403, route + ' is not open to boxes');
    if (r.variables.args) return refuse(r, 400, 'no query is forwarded to HomeSmartlink');
    const own = scope(r, 'hsl');
    const box = r.variables.box;
    const b = body(r);
    if (b === null) return;
    const req = b.value;
    if (req === null || typeof req !== 'object' || Array.isArray(req)) return refuse(r, 400, 'a HomeSmartlink request body is a JSON object');
    function ownHome(h) { return typeof h === 'string' && own.indexOf(h) >= 0; }
    switch (route) {
    case 'POST /partners/1/config':
    case 'POST /partners/1/request':
        if (!ownHome(req.homeId)) return refuse(r, 403, 'home ' + req.homeId + ' is not in the scope of box ' + box);
        break;
    case 'POST /partners/1/derogations': {
        const items = Array.isArray(req.derogations) ? req.derogations : [];
        if (items.length === 0) return refuse(r, 400, 'a derogation request lists its derogations');
        const foreign = items.filter(function (d) { return !d || !ownHome(d.homeId); });
        if (foreign.length > 0) return refuse(r, 403, 'home ' + (foreign[0] && foreign[0].homeId) + ' is not in the scope of box ' + box);
        break;
    }
    case 'POST /partners/1/report':
    case 'PUT /partners/1/request': {
        const key = route === 'PUT /partners/1/request' ? 'messageId' : 'trigger';
        const id = unsign(r, req[key]);
        if (id === null) return refuse(r, 403, key + ' ' + req[key] + ' was not issued to box ' + box);
        req[key] = id;
        break;
    }
    }
    // What goes upstream is the object just checked, serialised again: one reading for the relay and the cloud.
    const reply = await r.subrequest('/_hsl' + path, { method: r.method, body: JSON.stringify(req) });
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

// ---- Podero -----------------------------------------------------------------------------------------------

/**
 * The Podero bearer token (cached by nginx for less than its lifetime); `renew` asks the token endpoint, and
 * its answer replaces the cached one. A cached answer that is no readable token (whatever put it there) is
 * renewed once instead of failing every box until it expires.
 */
async function poderoToken(r, renew) {
    for (let n = renew ? 1 : 0; n < 2; n++) {
        const reply = await r.subrequest('/_podero/token', { method: 'GET', args: n > 0 ? 'renew=1' : '' });
        if (reply.status !== 200) continue;
        try {
            const token = JSON.parse(reply.responseText).access_token;
            if (typeof token === 'string' && token.length > 0) return token;
        } catch (e) { /* unreadable: renew once */ }
    }
    return null;
}

/** /podero/api/partners/v2.0/org/<org>/users[/<user>/heat-pumps[/<heat pump>[/statistics]]]. */
async function podero(r) {
    const box = r.variables.box;
    const seg = segments(r, '/podero/api/partners/v2.0/');
    if (seg === null) return;
    // Scope entries are "podero:<user>/<heat pump>": an owner and one of its heat pumps.
    const own = scope(r, 'podero').map(function (s) { return s.split('/'); });
    function ownUser(u) { return own.some(function (p) { return p[0] === u; }); }
    function ownPump(u, h) { return own.some(function (p) { return p[0] === u && p[1] === h; }); }
    if (seg[0] !== 'org' || seg.length < 3 || seg[2] !== 'users') return refuse(r, 403, r.uri + ' is not open to boxes');
    let filter = null, upstream = '/_podero/api/';
    let allowed = ['GET'];
    if (seg.length === 3) {
        // The organisation's user list is company-wide: served from the relay's cache, filtered per box.
        filter = function (u) { return ownUser(String(u.id)); };
        upstream = '/_podero_shared/api/';
    } else if (seg.length === 5 && seg[4] === 'heat-pumps') {
        if (!ownUser(seg[3])) return refuse(r, 403, 'user ' + seg[3] + ' is not in the scope of box ' + box);
        filter = function (h) { return ownPump(seg[3], String(h.id)); };
    } else if (seg[4] === 'heat-pumps' && (seg.length === 6 || (seg.length === 7 && seg[6] === 'statistics'))) {
        if (!ownPump(seg[3], seg[5])) return refuse(r, 403, 'heat pump ' + seg[5] + ' is not in the scope of box ' + box);
        if (seg.length === 6) allowed = ['GET', 'PUT', 'PATCH'];
    } else {
        return refuse(r, 403, r.uri + ' is not open to boxes');
    }
    if (method(r, allowed) === null) return;
    const args = r.variables.args || '';
    if (args !== '' && (seg.length !== 7 || !QUERY.test(args))) return refuse(r, 400, 'this query is not forwarded to Podero');
    const b = body(r);
    if (b === null) return;
    let reply;
    for (let attempt = 0; attempt < 2; attempt++) {
        const token = await poderoToken(r, attempt > 0);
        if (token === null) return refuse(r, 503, 'the Podero token endpoint did not issue a token');
        r.variables.podero_bearer = 'Bearer ' + token;
        const options = { method: r.method, args: args };
        if (b.text !== undefined) options.body = b.text;
        reply = await r.subrequest(upstream + 'partners/v2.0/' + seg.join('/'), options);
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

export default { boschHealth, boschGateways, bosch, hsl, podero };
