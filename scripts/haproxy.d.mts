export function findHaproxy(): string | undefined;
export function haproxyConfig(options: { port: number; servers: string[]; maxconn?: number; timeoutSeconds?: number }): string;
