// Start Converse.js for the browser tests: the query string gives the
// transport (ws or bosh), its URL, and the account to log in with.
(function () {
    const q = new URLSearchParams(window.location.search);
    const settings = {
        auto_login: true,
        jid: q.get('jid'),
        password: q.get('password'),
        view_mode: 'fullscreen',
        discover_connection_methods: false,
        show_controlbox_by_default: true,
        allow_non_roster_messaging: true,
        loglevel: 'debug',
        persistent_store: 'sessionStorage',
        clear_cache_on_logout: true,
        theme: 'default',
    };
    if (q.get('transport') === 'bosh')
        settings.bosh_service_url = q.get('url');
    else
        settings.websocket_url = q.get('url');
    // after the body exists: Converse puts its root element there
    window.addEventListener('DOMContentLoaded', () => converse.initialize(settings));
})();
