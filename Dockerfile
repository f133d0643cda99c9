# One image for both the node (the default entrypoint) and the operator
# (command: node dist/operator/main.js), on Node 24, the active LTS line (package.json engines says
# what the dependencies need). Build: docker build -t conflux .
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY node ./node
COPY operator ./operator
RUN npm run build && npm prune --omit=dev --ignore-scripts

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
USER 10001:10001
EXPOSE 7000 8080 8443
ENTRYPOINT ["node", "dist/node/main.js"]
