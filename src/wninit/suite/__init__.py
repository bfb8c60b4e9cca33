"""The experiment suite: data, training, sweeps, reports and the command line. It imports the library, never the reverse."""
