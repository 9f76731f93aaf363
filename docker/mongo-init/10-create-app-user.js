// Create the least-privilege user the services connect as: readWrite on the app database only.
// The official image runs this once, as the root user, when the data volume is empty.
const dbName = process.env.MONGODB_DATABASE;
const user = process.env.MONGO_APP_USERNAME;
const password = process.env.MONGO_APP_PASSWORD;
if (!dbName || !user || !password) {
  throw new Error("MONGODB_DATABASE, MONGO_APP_USERNAME and MONGO_APP_PASSWORD must be set");
}
db.getSiblingDB(dbName).createUser({ user: user, pwd: password, roles: [{ role: "readWrite", db: dbName }] });
print(`created user ${user} with readWrite on ${dbName}`);
