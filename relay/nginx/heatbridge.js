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

export default { boschInScope, boschGateways };
