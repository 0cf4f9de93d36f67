"""The exit statuses of every ``tagstream`` command: 0 done; 1 failed at run time (nothing
undelivered was committed); 2 bad settings, arguments or model file."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
