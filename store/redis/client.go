package redis

import goredis "github.com/redis/go-redis/v9"

// Client returns the store's Redis client and key prefix, for the parts
// of the hub that share other state over the same Redis (package
// presence). The store still owns the client: it is closed with the
// store, and its users must stop first.
func (s *Store) Client() (goredis.UniversalClient, string) { return s.c, s.prefix }
