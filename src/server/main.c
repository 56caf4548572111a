/*
 * spoold: the job server. Parses flags, builds the server, runs the event
 * loop until SIGINT or SIGTERM.
 */
#include <stdlib.h>

#include "common/log.h"
#include "server/checkconf.h"
#include "server/config.h"
#include "server/server.h"

int main(int argc, char **argv)
{
    struct config cfg;
    int rc = config_parse(&cfg, argc, argv);
    if (rc != 0) {
        config_release(&cfg);
        return rc > 0 ? EXIT_SUCCESS : 2;
    }
    log_set_level(cfg.log_level);
    if (cfg.is_check_config) {
        rc = checkconf_run(&cfg);
        config_release(&cfg);
        return rc;
    }
    if (cfg.is_check) {
        rc = server_check(&cfg);
        config_release(&cfg);
        return rc;
    }
    struct server srv;
    if (server_init(&srv, &cfg) != 0) {
        server_release(&srv);
        config_release(&cfg);
        return EXIT_FAILURE;
    }
    rc = server_run(&srv);
    server_release(&srv);
    config_release(&cfg);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
